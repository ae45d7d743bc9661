"""What a language model is to the rest of the app: one small protocol, whatever the provider.

The interviewer, the LLM grader and the evals are typed on :class:`ChatModel` only.
:mod:`app.llm.litellm_model` puts every litellm provider behind it; :mod:`app.llm.mock` is a
deterministic model for demos, tests and evals without a key. A failed call raises
:class:`app.errors.LLMError`, whose message is already redacted.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

Message = Mapping[str, str]


def _add(a: float | None, b: float | None) -> float | None:
    """Unknown plus unknown stays unknown; a known part is never lost to an unknown one."""
    if a is None:
        return b
    return a if b is None else a + b


@dataclass(frozen=True)
class Usage:
    """Tokens and price of one call (None: the provider did not say). Usages add up."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        prompt = _add(self.prompt_tokens, other.prompt_tokens)
        completion = _add(self.completion_tokens, other.completion_tokens)
        return Usage(
            prompt_tokens=None if prompt is None else int(prompt),
            completion_tokens=None if completion is None else int(completion),
            cost_usd=_add(self.cost_usd, other.cost_usd),
        )


@dataclass(frozen=True)
class ChatReply:
    text: str
    model: str
    latency_ms: float
    attempts: int
    structured: bool = False  # the provider was asked for the JSON schema
    usage: Usage = Usage()


@dataclass(frozen=True)
class ChatRequest:
    """One call as an implementation receives it."""

    messages: list[dict[str, str]]
    schema: type[BaseModel] | None = None  # ask for (and expect) this JSON shape
    temperature: float = 0.0
    max_tokens: int | None = None


class ChatModel(Protocol):
    """A chat model. Implementations subclass this protocol and provide :meth:`respond`
    and :meth:`respond_stream` (and own retries, timeouts, rate limits and redaction);
    callers use :meth:`complete` and :meth:`stream`."""

    name: str  # the model string, e.g. "openai/gpt-4o-mini" or "mock"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> ChatReply:
        """One completion; with ``schema``, text that should validate as it."""
        sent = [dict(m) for m in messages]
        return await self.respond(ChatRequest(sent, schema, temperature, max_tokens))

    def stream(
        self, messages: Sequence[Message], *, temperature: float = 0.3
    ) -> AsyncGenerator[str, None]:
        """Text deltas as they arrive; a stream that breaks raises LLMError with the text
        received so far in ``partial``."""
        return self.respond_stream(ChatRequest([dict(m) for m in messages], None, temperature))

    async def respond(self, request: ChatRequest) -> ChatReply:
        """The completion for ``request``; :class:`app.errors.LLMError` if there is none."""
        ...

    def respond_stream(self, request: ChatRequest) -> AsyncGenerator[str, None]:
        """The deltas for ``request``."""
        ...

    def redact(self, text: str) -> str:
        """``text`` without this model's key, or anything shaped like a key."""
        ...
