"""How much model-written text is kept: every field a model writes has a cap here.

A model can reply with megabytes (2,000,000 characters of "coaching" were once stored), and
whatever it writes is stored with the session and drawn on the page. The caps sit well above
what a useful reply needs; text cut at a cap ends with :data:`TRUNCATION_MARK`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

TRUNCATION_MARK = " [\u2026]"

MAX_COACHING_CHARS = 2_000  # two to four sentences are asked for
MAX_JUSTIFICATION_CHARS = 1_000  # a criterion's reasoning
MAX_QUOTE_CHARS = 500  # an evidence quote (cut without a mark: a prefix is still verbatim)
MAX_QUOTES = 5  # evidence quotes per criterion
MAX_CLAIM_CHARS = 300  # a misconception as the candidate asserted it
MAX_CORRECTION_CHARS = 600
MAX_MISCONCEPTIONS = 6
MAX_MISSED_POINT_CHARS = 300  # one missed key point
MAX_MISSED_POINTS = 8  # per criterion, as many as a rubric criterion may list
MAX_FEEDBACK_CHARS = 4_000  # streamed conversational feedback
MAX_PHRASING_CHARS = 1_500  # the interviewer's words around a question (150 words or so)
MAX_ERROR_CHARS = 500  # an error kept as the reason for a fallback


def cap(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters ending in :data:`TRUNCATION_MARK`."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARK)].rstrip() + TRUNCATION_MARK


def capped(limit: int) -> AfterValidator:
    """A pydantic validator applying :func:`cap` (``Annotated[str, capped(n)]``)."""
    return AfterValidator(lambda text: cap(text, limit))


def at_most(count: int) -> AfterValidator:
    """A pydantic validator keeping the first ``count`` items of a list."""
    return AfterValidator(lambda items: items[:count])


Quote = Annotated[str, AfterValidator(lambda text: text[:MAX_QUOTE_CHARS])]
