"""Keys out of every error text before it is stored, shown or logged.

Providers echo the key they were sent ("Incorrect API key provided: sk-..."), and HTTP
libraries print request headers, so any text that came back from a call may carry it.
:func:`redact` removes the configured key itself and anything shaped like a key or a
credential header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6  # a configured "key" shorter than this is not searched for verbatim

_PATTERNS = [
    # Authorization: Bearer <token> / Basic <token>; "Bearer <token>" on its own
    re.compile(r"(?i)(\bauthorization\b[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|basic\s+)?[^\s\"',;}]+"),
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;}]+"),
    # api_key=..., "api_key": "...", x-api-key: ..., ?key=...
    re.compile(
        r"(?i)(\b(?:x-)?(?:api[_-]?key|access[_-]?token|secret|password)\b[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',;}&]+"
    ),
    re.compile(r"(?i)([?&]key=)[^\s\"'&]+"),
    # provider key shapes: OpenAI sk-/sk-proj-, Anthropic sk-ant-, Groq gsk_, Google AIza,
    # Hugging Face hf_
    re.compile(r"()\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9]{16,})"),
    re.compile(r"()\b(?:AIza[0-9A-Za-z_\-]{30,}|hf_[A-Za-z0-9]{20,})"),
]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets or anything that looks like a key."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text
