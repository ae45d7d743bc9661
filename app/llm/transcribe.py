"""Speech to text through an OpenAI-compatible ``/audio/transcriptions`` endpoint (litellm),
with the same retries, timeout and redaction as every other provider call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.llm.policy import CallPolicy, litellm_module


@dataclass(frozen=True)
class TranscriptionReply:
    text: str
    latency_ms: float
    attempts: int


async def transcribe(
    policy: CallPolicy, audio: bytes, prompt: str = "", filename: str = "answer.wav"
) -> TranscriptionReply:
    """The endpoint's transcript of ``audio``; :class:`app.errors.LLMError` if it fails."""
    litellm = litellm_module()
    started = time.perf_counter()
    options = policy.litellm_options()
    options.update(file=(filename, audio), prompt=prompt)

    async def call() -> Any:
        return await litellm.atranscription(**options)

    response, attempts = await policy.run(call)
    return TranscriptionReply(
        text=str(getattr(response, "text", "") or "").strip(),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        attempts=attempts,
    )
