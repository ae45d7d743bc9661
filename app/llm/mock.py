"""A deterministic chat model: ``INTERVIEWER_LLM_MODEL=mock`` (or ``mock/<anything>``).

For demos, tests and evals without a key or a network. Replies can be scripted with
:meth:`MockChatModel.enqueue` (text, or an exception to raise), and :attr:`history` keeps
what was sent. With nothing queued it answers the same way every time: a schema request
gets a schema-valid object derived from the request (a schema class may supply its own
with a ``mock_reply(messages)`` classmethod; the LLM grader's does), plain text gets
:data:`MOCK_TEXT`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.llm.base import ChatReply, Message, Usage
from app.llm.redact import redact

MOCK_PREFIX = "mock"
MOCK_TEXT = "This reply comes from the mock language model; configure a real model for more."
_PLACEHOLDERS: dict[str, Any] = {
    "string": "mock",
    "integer": 3,
    "number": 2.5,
    "boolean": False,
    "array": [],
    "null": None,
}


def is_mock(model: str) -> bool:
    """True for ``mock`` and ``mock/<anything>``."""
    return model == MOCK_PREFIX or model.startswith(f"{MOCK_PREFIX}/")


def schema_example(schema: type[BaseModel]) -> BaseModel:
    """A valid instance of ``schema`` built from its JSON schema: defaults where there are
    any, otherwise a placeholder per type (empty lists, a mid score, "mock")."""
    document = schema.model_json_schema()
    definitions: dict[str, Any] = document.get("$defs", {})

    def build(node: dict[str, Any]) -> Any:
        if "$ref" in node:
            return build(definitions[node["$ref"].rsplit("/", 1)[-1]])
        if "default" in node:
            return node["default"]
        if "anyOf" in node:
            return build(node["anyOf"][0])
        if node.get("type") == "object":
            return {name: build(sub) for name, sub in node.get("properties", {}).items()}
        return _PLACEHOLDERS.get(node.get("type", "null"))

    return schema.model_validate(build(document))


def _words(messages: Sequence[Message]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


@dataclass(frozen=True)
class MockCall:
    """One request the mock received."""

    messages: list[dict[str, str]]
    schema: type[BaseModel] | None
    temperature: float
    stream: bool


class MockChatModel:
    """A :class:`app.llm.base.ChatModel` that needs nothing and always answers."""

    def __init__(self, name: str = MOCK_PREFIX) -> None:
        self.name = name
        self.history: list[MockCall] = []
        self._queue: deque[str | BaseException] = deque()

    def enqueue(self, *replies: str | BaseException) -> None:
        """Script the next replies, in order; an exception is raised instead of replying."""
        self._queue.extend(replies)

    def redact(self, text: str) -> str:
        return redact(text)

    def _reply(
        self,
        messages: Sequence[Message],
        schema: type[BaseModel] | None,
        temperature: float,
        stream: bool,
    ) -> str:
        self.history.append(MockCall([dict(m) for m in messages], schema, temperature, stream))
        if self._queue:
            queued = self._queue.popleft()
            if isinstance(queued, BaseException):
                raise queued
            return queued
        if schema is None:
            return MOCK_TEXT
        own = getattr(schema, "mock_reply", None)
        example: BaseModel = own(messages) if callable(own) else schema_example(schema)
        return example.model_dump_json()

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> ChatReply:
        text = self._reply(messages, schema, temperature, stream=False)
        return ChatReply(
            text=text,
            model=self.name,
            latency_ms=0.0,
            attempts=1,
            structured=schema is not None,
            usage=Usage(_words(messages), len(text.split()), 0.0),
        )

    async def stream(
        self, messages: Sequence[Message], *, temperature: float = 0.3
    ) -> AsyncGenerator[str, None]:
        text = self._reply(messages, None, temperature, stream=True)
        for index, word in enumerate(text.split(" ")):
            yield word if index == 0 else f" {word}"
