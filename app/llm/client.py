"""One async client for every LLM call, through litellm (any model string, any api_base).

Retries live here and only here: litellm's ``num_retries`` and the OpenAI SDK's
``max_retries`` are both set to 0 on every call, and :meth:`LLMClient.generate` retries
rate limits (honouring Retry-After), timeouts, connection errors and 5xx with exponential
backoff and jitter. A per-event-loop semaphore caps concurrent calls. Structured output asks
for the pydantic schema (``response_format``) and, if a server rejects that, falls back to
prompt-and-validate for the rest of the client's life.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.config import Settings
from app.llm.redact import redact

Message = Mapping[str, str]


class LLMError(RuntimeError):
    """An LLM call failed for good (after retries, or a non-retryable error)."""

    def __init__(self, message: str, attempts: int, partial: str = "") -> None:
        super().__init__(message)
        self.attempts = attempts
        self.partial = partial  # text a stream produced before it failed


@dataclass(frozen=True)
class LLMReply:
    text: str
    model: str
    latency_ms: float
    attempts: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    structured: bool = False  # the provider was asked for the JSON schema


def _litellm() -> Any:
    import litellm  # heavy (seconds); imported on first use, never at start-up

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers that lack an option (e.g. temperature) ignore it
    litellm.telemetry = False
    return litellm


def _response_cost(litellm: Any, response: Any) -> float | None:
    """The price litellm already worked out for this response (computing it again costs a
    few ms of CPU per call); None for an unknown model or a custom endpoint."""
    known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if known is not None:
        return float(known)
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None


def _retryable(exc: BaseException) -> bool:
    litellm = _litellm()
    retryable = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
    )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, retryable):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if the error has one."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(str(value))
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _schema_rejected(exc: BaseException) -> bool:
    text = str(exc).lower()
    return getattr(exc, "status_code", None) == 400 and any(
        word in text for word in ("response_format", "json_schema", "schema", "structured")
    )


class LLMClient:
    """Async chat completions with one retry policy, a concurrency cap and usage accounting."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        concurrency: int = 8,
        seed: int | None = None,
    ) -> None:
        if not model:
            raise ValueError("an LLM client needs a model string, e.g. 'openai/gpt-4o-mini'")
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.concurrency = concurrency
        self._random = random.Random(seed)
        self._schema_supported = True
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(
        cls, settings: Settings, model: str | None = None, api_key: str | None = None
    ) -> LLMClient:
        key = api_key or (settings.llm_api_key.get_secret_value() if settings.llm_api_key else None)
        return cls(
            model or settings.llm_model,
            api_base=settings.llm_api_base,
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            backoff_base_s=settings.llm_backoff_base_s,
            backoff_max_s=settings.llm_backoff_max_s,
            concurrency=settings.llm_concurrency,
        )

    def __repr__(self) -> str:  # never show the key
        return f"LLMClient(model={self.model!r}, api_base={self.api_base!r})"

    def redact(self, text: str) -> str:
        """``text`` without this client's key, or anything shaped like a key."""
        return redact(text, [self._api_key])

    # -- internals ----------------------------------------------------------------------
    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.concurrency)
            self._semaphores[loop] = semaphore
        return semaphore

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return float(ceiling / 2 + self._random.uniform(0, ceiling / 2))

    def _call_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "model": self.model,
            "timeout": self.timeout_s,
            "num_retries": 0,  # retries are ours alone
            "max_retries": 0,  # ... and not the OpenAI SDK's either
        }
        if self.api_base:
            options["api_base"] = self.api_base
        if self._api_key:
            options["api_key"] = self._api_key
        return options

    async def _with_retries(self, call: Any) -> tuple[Any, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._semaphore():
                    async with asyncio.timeout(self.timeout_s + 5):  # a guard, not the timeout
                        return await call(), attempt
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _retryable(exc) or attempt > self.max_retries:
                    message = self.redact(f"{type(exc).__name__}: {exc}")
                    raise LLMError(message, attempt) from exc
                delay = _retry_after(exc)
                delay = self._backoff(attempt) if delay is None else min(delay, self.backoff_max_s)
                await asyncio.sleep(delay)

    # -- public API ---------------------------------------------------------------------
    async def generate(
        self,
        messages: Sequence[Message],
        *,
        response_format: type[BaseModel] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> LLMReply:
        """One completion. Raises :class:`LLMError` when it cannot get one."""
        litellm = _litellm()
        started = time.perf_counter()
        options = self._call_options()
        options.update(messages=[dict(m) for m in messages], temperature=temperature)
        if max_tokens:
            options["max_tokens"] = max_tokens
        structured = response_format is not None and self._schema_supported
        if structured:
            options["response_format"] = response_format

        async def call() -> Any:
            return await litellm.acompletion(**options)

        attempts_before = 0
        try:
            response, attempts = await self._with_retries(call)
        except LLMError as error:
            if not (structured and _schema_rejected(error.__cause__ or error)):
                raise
            # This server does not take a JSON schema: prompt-and-validate from now on.
            self._schema_supported = False
            structured = False
            options.pop("response_format", None)
            attempts_before = error.attempts
            response, attempts = await self._with_retries(call)
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        cost = _response_cost(litellm, response)
        return LLMReply(
            text=text,
            model=str(getattr(response, "model", None) or self.model),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            attempts=attempts + attempts_before,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            cost_usd=cost,
            structured=structured,
        )

    async def stream(
        self, messages: Sequence[Message], *, temperature: float = 0.3
    ) -> AsyncGenerator[str, None]:
        """Text deltas as they arrive. Retries only before the first delta; a stream that
        breaks later raises :class:`LLMError` carrying the text received so far."""
        litellm = _litellm()
        options = self._call_options()
        options.update(messages=[dict(m) for m in messages], temperature=temperature, stream=True)

        async def call() -> Any:
            return await litellm.acompletion(**options)

        response, attempts = await self._with_retries(call)
        received: list[str] = []
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                async for chunk in response:
                    choices = getattr(chunk, "choices", None) or []
                    delta = getattr(choices[0].delta, "content", None) if choices else None
                    if delta:
                        received.append(delta)
                        yield delta
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = self.redact(f"stream broke: {type(exc).__name__}: {exc}")
            raise LLMError(message, attempts, "".join(received)) from exc
