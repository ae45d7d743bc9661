"""Score bands: what a 0-5 score means to the interview, the report and the evals.

Every threshold the product applies to a score lives here, named for what it decides, so
the selector, the interviewer, the engine, the report, the UI and the evals agree. The
levels they sit between are the rubric levels of ``corpus/README.md`` (0 no answer, 1 very
weak, 2 partial, 3 adequate, 4 strong, 5 excellent; a score's level rounds halves up).
"""

from __future__ import annotations

from enum import StrEnum

# Below this an answer is weak: it rounds to level 2 ("partial") or lower, so the next
# question follows up on the gap or steps down a level.
WEAK = 2.5

# The pass line: at or above it an answer or a criterion is at least adequate (level 3).
# A criterion under it counts as missed, a turn under it is a gap in the report, and the
# evals' pass/fail agreement splits scores here.
PASS = 3.0

# At or above this an answer is strong: halfway from adequate (3) to strong (4), so the next
# question goes deeper or harder, and the target difficulty rises.
STRONG = 3.5

# A topic or criterion averaging at least level 4 ("strong") is listed as a strength in the
# report and drawn green on the page.
STRENGTH = 4.0

# The most an LLM's criterion score counts without a verbatim quote to back it: with no
# evidence from the answer the claim is unchecked, so it stands at level 2 ("partial").
UNEVIDENCED_SCORE_CAP = 2.0


class Band(StrEnum):
    """Which side of :data:`WEAK` and :data:`STRONG` an answer's score falls."""

    WEAK = "weak"
    MIDDLE = "middle"
    STRONG = "strong"


def band(score: float) -> Band:
    """The band of a turn's score: weak below :data:`WEAK`, strong from :data:`STRONG`."""
    if score < WEAK:
        return Band.WEAK
    if score >= STRONG:
        return Band.STRONG
    return Band.MIDDLE
