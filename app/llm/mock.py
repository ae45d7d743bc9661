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
from typing import Any

from pydantic import BaseModel

from app.llm.base import ChatModel, ChatReply, ChatRequest, Message, Usage
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


class MockChatModel(ChatModel):
    """A :class:`app.llm.base.ChatModel` that needs nothing and always answers."""

    def __init__(self, name: str = MOCK_PREFIX) -> None:
        self.name = name
        self.history: list[ChatRequest] = []  # every request, in order (streams too)
        self._queue: deque[str | BaseException] = deque()

    def enqueue(self, *replies: str | BaseException) -> None:
        """Script the next replies, in order; an exception is raised instead of replying."""
        self._queue.extend(replies)

    def redact(self, text: str) -> str:
        return redact(text)

    def _reply(self, request: ChatRequest) -> str:
        self.history.append(request)
        if self._queue:
            queued = self._queue.popleft()
            if isinstance(queued, BaseException):
                raise queued
            return queued
        if request.schema is None:
            return MOCK_TEXT
        own = getattr(request.schema, "mock_reply", None)
        example = own(request.messages) if callable(own) else schema_example(request.schema)
        return str(example.model_dump_json())

    async def respond(self, request: ChatRequest) -> ChatReply:
        text = self._reply(request)
        return ChatReply(
            text=text,
            model=self.name,
            latency_ms=0.0,
            attempts=1,
            structured=request.schema is not None,
            usage=Usage(_words(request.messages), len(text.split()), 0.0),
        )

    async def respond_stream(self, request: ChatRequest) -> AsyncGenerator[str, None]:
        for index, word in enumerate(self._reply(request).split(" ")):
            yield word if index == 0 else f" {word}"
