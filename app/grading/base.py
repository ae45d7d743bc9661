"""What a grader is, and the one place an evaluation is assembled.

Graders propose criterion scores, quotes and misconceptions; :func:`assemble` checks every
quote against the answer, clamps scores, and computes the overall score and level with the
documented mapping, so no grader (and no model) can set them directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.corpus.items import InterviewItem
from app.grading.models import CriterionScore, DetectedMisconception, Evaluation, GraderRun
from app.grading.scoring import (
    clamp_score,
    level_for,
    level_text,
    limit_sentences,
    overall_score,
    verified_quotes,
)


class Grader(Protocol):
    """Grades one answer to one item. Implementations must never raise for a bad answer."""

    name: str

    async def grade(self, item: InterviewItem, answer: str) -> Evaluation: ...


@dataclass(frozen=True)
class ProposedCriterion:
    criterion_id: str
    score: float
    justification: str
    evidence: Sequence[str] = ()
    missed_key_points: Sequence[str] = ()


def assemble(
    item: InterviewItem,
    answer: str,
    proposed: Sequence[ProposedCriterion],
    misconceptions: Sequence[DetectedMisconception],
    coaching: str,
    run: GraderRun,
    flags: Sequence[str] = (),
    evidence_cap: float | None = None,
) -> Evaluation:
    """An :class:`Evaluation` with verified quotes and the overall score computed in code.

    With ``evidence_cap``, a criterion scored above it without a verified quote is lowered to
    it and the evaluation is flagged ``unverified_scores``. Only verified misconceptions
    (listed for the question, or quoted verbatim) count against the score.
    """
    by_id = {p.criterion_id: p for p in proposed}
    criteria: list[CriterionScore] = []
    dropped = 0
    missed_all: list[str] = []
    flags = list(flags)
    for criterion in item.rubric.criteria:
        proposal = by_id.get(criterion.id)
        if proposal is None:
            proposal = ProposedCriterion(criterion.id, 0.0, "Not assessed by the grader.")
        evidence, lost = verified_quotes(proposal.evidence, answer)
        dropped += lost
        missed = [p for p in proposal.missed_key_points if p]
        missed_all.extend(missed)
        score = clamp_score(proposal.score)
        if evidence_cap is not None and not evidence and score > evidence_cap:
            score = evidence_cap
            flags.append("unverified_scores")
        criteria.append(
            CriterionScore(
                criterion_id=criterion.id,
                name=criterion.name,
                weight=criterion.weight,
                score=round(score, 2),
                justification=proposal.justification.strip() or "No justification given.",
                evidence=evidence,
                missed_key_points=missed,
            )
        )
    checked_misconceptions = []
    for found in misconceptions:
        quotes, lost = verified_quotes([found.evidence] if found.evidence else [], answer)
        dropped += lost
        quote = quotes[0] if quotes else None
        verified = found.from_corpus or quote is not None
        checked_misconceptions.append(
            found.model_copy(update={"evidence": quote, "verified": verified})
        )
    overall = overall_score(criteria, sum(m.verified for m in checked_misconceptions))
    level = level_for(overall)
    label, description = level_text(item.rubric, level)
    return Evaluation(
        item_id=item.id,
        criteria=criteria,
        misconceptions=checked_misconceptions,
        missed_key_points=list(dict.fromkeys(missed_all)),
        overall=overall,
        level=level,
        level_label=label,
        level_description=description,
        coaching=limit_sentences(coaching),
        flags=list(dict.fromkeys(flags)),
        grader=run.model_copy(update={"dropped_quotes": run.dropped_quotes + dropped}),
    )


@dataclass(frozen=True)
class BatchResult:
    evaluations: list[Evaluation | None]
    errors: list[tuple[int, BaseException]]


async def grade_many(
    grader: Grader,
    pairs: Sequence[tuple[InterviewItem, str]],
    concurrency: int = 8,
) -> BatchResult:
    """Grade many answers concurrently; one failure does not lose the others' results."""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    results: list[Evaluation | None] = [None] * len(pairs)
    errors: list[tuple[int, BaseException]] = []

    async def one(index: int, item: InterviewItem, answer: str) -> None:
        async with semaphore:
            try:
                results[index] = await grader.grade(item, answer)
            except Exception as exc:  # partial failure: record it, keep the batch going
                errors.append((index, exc))

    async with asyncio.TaskGroup() as group:
        for index, (item, answer) in enumerate(pairs):
            group.create_task(one(index, item, answer))
    return BatchResult(results, sorted(errors, key=lambda e: e[0]))
