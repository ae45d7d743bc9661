"""How every call to a model provider is made: retries, timeouts, a concurrency cap, redaction.

Retries live here and only here: litellm's ``num_retries`` and the OpenAI SDK's
``max_retries`` are both set to 0 on every call (:meth:`CallPolicy.litellm_options`), and
:meth:`CallPolicy.run` retries rate limits (honouring Retry-After), timeouts, connection
errors and 5xx with exponential backoff and jitter. A per-event-loop semaphore caps
concurrent calls. Every error text leaves through :func:`app.llm.redact.redact`. Chat
completions (:mod:`app.llm.litellm_model`) and API transcription (:mod:`app.llm.transcribe`)
both go through one :class:`CallPolicy`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.config import Settings, resolve_api_key
from app.errors import LLMError
from app.llm.redact import redact

T = TypeVar("T")


def litellm_module() -> Any:
    """litellm, configured once; heavy (seconds), so imported on first use, never at start."""
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers that lack an option (e.g. temperature) ignore it
    litellm.telemetry = False
    return litellm


def retryable(exc: BaseException) -> bool:
    litellm = litellm_module()
    transient = (
        asyncio.TimeoutError,
        TimeoutError,
        ConnectionError,
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def retry_after(exc: BaseException) -> float | None:
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


@dataclass
class CallPolicy:
    """One provider endpoint and the rules every call to it follows."""

    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never shown
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    concurrency: int = 8
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False)
    _semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._semaphores = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        model: str,
        api_key: str | None = None,
        api_base: str | None = None,
    ) -> CallPolicy:
        return cls(
            model,
            api_base=api_base or settings.llm_api_base,
            api_key=resolve_api_key(settings, api_key),
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            backoff_base_s=settings.llm_backoff_base_s,
            backoff_max_s=settings.llm_backoff_max_s,
            concurrency=settings.llm_concurrency,
        )

    def redact(self, text: str) -> str:
        """``text`` without this policy's key, or anything shaped like a key."""
        return redact(text, [self.api_key])

    def failure(self, exc: BaseException, attempts: int, prefix: str = "") -> LLMError:
        """The error a failed call ends in, its text redacted."""
        message = self.redact(f"{prefix}{type(exc).__name__}: {exc}")
        return LLMError(message, attempts)

    def litellm_options(self) -> dict[str, Any]:
        """The options every litellm call gets: the endpoint, the timeout, no retries of its
        own (nor the OpenAI SDK's)."""
        options: dict[str, Any] = {
            "model": self.model,
            "timeout": self.timeout_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.api_base:
            options["api_base"] = self.api_base
        if self.api_key:
            options["api_key"] = self.api_key
        return options

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.concurrency)
            self._semaphores[loop] = semaphore
        return semaphore

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return float(ceiling / 2 + self._random.uniform(0, ceiling / 2))

    async def run(self, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """``call()``'s result and the attempts it took; :class:`LLMError` when it fails for
        good (a non-retryable error, or retries exhausted)."""
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
                if not retryable(exc) or attempt > self.max_retries:
                    raise self.failure(exc, attempt) from exc
                delay = retry_after(exc)
                delay = self.backoff(attempt) if delay is None else min(delay, self.backoff_max_s)
                await asyncio.sleep(delay)
