"""The documented mapping from criterion scores to the overall 0-5 score (corpus/README.md).

Graders only ever propose criterion scores, quotes and misconceptions; the overall score,
the level and the quote checks are decided here, the same way for every grader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from app.corpus.models import Rubric
from app.grading.models import CriterionScore

MISCONCEPTION_PENALTY = 1.0
MAX_MISCONCEPTION_PENALTY = 2.0
MIN_QUOTE_CHARS = 3

LEVEL_LABELS: dict[int, str] = {
    0: "No answer or wrong",
    1: "Wrong or very weak",
    2: "Partial",
    3: "Adequate",
    4: "Strong",
    5: "Excellent",
}


def clamp_score(value: float) -> float:
    return min(5.0, max(0.0, float(value)))


def overall_score(criteria: Sequence[CriterionScore], misconceptions: int = 0) -> float:
    """clamp(sum(weight * score) - min(1.0 * misconceptions, 2.0), 0, 5), to one decimal."""
    total_weight = sum(c.weight for c in criteria) or 1.0
    weighted = sum(c.weight * clamp_score(c.score) for c in criteria) / total_weight
    penalty = min(MISCONCEPTION_PENALTY * misconceptions, MAX_MISCONCEPTION_PENALTY)
    return round(clamp_score(weighted - penalty), 1)


def level_for(overall: float) -> int:
    """The nearest whole level, halves rounding up (2.5 is a 3)."""
    return int(min(5, max(0, int(overall + 0.5))))


def level_text(rubric: Rubric, level: int) -> tuple[str, str]:
    return LEVEL_LABELS[level], rubric.levels.get(level, "")


def _squash(text: str) -> str:
    return " ".join(text.split())


def is_verbatim(quote: str, answer: str) -> bool:
    """True when ``quote`` occurs in ``answer`` (whitespace runs compared as one space)."""
    quote = _squash(quote)
    return len(quote) >= MIN_QUOTE_CHARS and quote in _squash(answer)


def verified_quotes(quotes: Iterable[str], answer: str) -> tuple[list[str], int]:
    """The quotes that really occur in the answer, and how many were dropped."""
    kept: list[str] = []
    dropped = 0
    for quote in quotes:
        cleaned = quote.strip().strip('"').strip()
        if is_verbatim(cleaned, answer):
            if cleaned not in kept:
                kept.append(cleaned)
        else:
            dropped += 1
    return kept, dropped


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def limit_sentences(text: str, max_sentences: int = 4) -> str:
    """At most ``max_sentences`` sentences of coaching (the UI promises two to four)."""
    parts = [p for p in _SENTENCE.split(text.strip()) if p]
    return " ".join(parts[:max_sentences])
