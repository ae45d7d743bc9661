"""Every real provider behind :class:`app.llm.base.ChatModel`, through litellm (any model
string, any api_base).

Calls follow one :class:`app.llm.policy.CallPolicy` (retries, timeouts, a concurrency cap,
redaction). Structured output asks for the pydantic schema (``response_format``) and, if a
server rejects that, falls back to prompt-and-validate for the rest of the model's life.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from app.config import Settings
from app.errors import LLMError
from app.llm.base import ChatModel, ChatReply, ChatRequest, Usage
from app.llm.policy import CallPolicy, litellm_module


def _response_cost(litellm: Any, response: Any) -> float | None:
    """The price litellm already worked out for this response (computing it again costs a
    few ms of CPU per call); None for an unknown model or a custom endpoint."""
    known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if known is not None:
        return float(known)
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises many kinds of errors for models it cannot price
        return None


def _schema_rejected(exc: BaseException) -> bool:
    text = str(exc).lower()
    return getattr(exc, "status_code", None) == 400 and any(
        word in text for word in ("response_format", "json_schema", "schema", "structured")
    )


class LiteLLMChatModel(ChatModel):
    """Async chat completions with one call policy and usage accounting."""

    def __init__(self, policy: CallPolicy) -> None:
        if not policy.model:
            raise ValueError("a chat model needs a model string, e.g. 'openai/gpt-4o-mini'")
        self.name = policy.model
        self.policy = policy
        self._schema_supported = True

    @classmethod
    def from_settings(
        cls, settings: Settings, model: str, api_key: str | None = None
    ) -> LiteLLMChatModel:
        return cls(CallPolicy.from_settings(settings, model, api_key))

    def __repr__(self) -> str:  # never show the key
        return f"LiteLLMChatModel(model={self.name!r}, api_base={self.policy.api_base!r})"

    def redact(self, text: str) -> str:
        return self.policy.redact(text)

    async def respond(self, request: ChatRequest) -> ChatReply:
        """One completion. Raises :class:`LLMError` when it cannot get one."""
        litellm = litellm_module()
        started = time.perf_counter()
        options = self.policy.litellm_options()
        options.update(messages=request.messages, temperature=request.temperature)
        if request.max_tokens:
            options["max_tokens"] = request.max_tokens
        structured = request.schema is not None and self._schema_supported
        if structured:
            options["response_format"] = request.schema

        async def call() -> Any:
            return await litellm.acompletion(**options)

        attempts_before = 0
        try:
            response, attempts = await self.policy.run(call)
        except LLMError as error:
            if not (structured and _schema_rejected(error.__cause__ or error)):
                raise
            # This server does not take a JSON schema: prompt-and-validate from now on.
            self._schema_supported = False
            structured = False
            options.pop("response_format", None)
            attempts_before = error.attempts
            response, attempts = await self.policy.run(call)
        usage = getattr(response, "usage", None)
        return ChatReply(
            text=response.choices[0].message.content or "",
            model=str(getattr(response, "model", None) or self.name),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            attempts=attempts + attempts_before,
            structured=structured,
            usage=Usage(
                prompt_tokens=getattr(usage, "prompt_tokens", None),
                completion_tokens=getattr(usage, "completion_tokens", None),
                cost_usd=_response_cost(litellm, response),
            ),
        )

    async def respond_stream(self, request: ChatRequest) -> AsyncGenerator[str, None]:
        """Text deltas as they arrive. Retries only before the first delta; a stream that
        breaks later raises :class:`LLMError` carrying the text received so far."""
        litellm = litellm_module()
        options = self.policy.litellm_options()
        options.update(messages=request.messages, temperature=request.temperature, stream=True)

        async def call() -> Any:
            return await litellm.acompletion(**options)

        response, attempts = await self.policy.run(call)
        received: list[str] = []
        try:
            async with asyncio.timeout(self.policy.timeout_s * 2):
                async for chunk in response:
                    choices = getattr(chunk, "choices", None) or []
                    delta = getattr(choices[0].delta, "content", None) if choices else None
                    if delta:
                        received.append(delta)
                        yield delta
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any break in the stream ends it with what was received
            error = self.policy.failure(exc, attempts, prefix="stream broke: ")
            raise LLMError(str(error), attempts, "".join(received)) from exc
