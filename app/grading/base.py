"""What a grader is, the one place an evaluation is assembled, and batch grading.

Graders propose criterion scores, quotes and misconceptions; :func:`assemble` checks every
quote against the answer, clamps scores, and computes the overall score and level with the
documented mapping, so no grader (and no model) can set them directly.

Everything that uses a grader (services, the engine, the evals, the UI) is typed on the
:class:`Grader` protocol; concrete graders are built by name in :mod:`app.grading.registry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from app.config import Settings
from app.corpus.items import InterviewItem
from app.errors import ConfigError
from app.grading.models import (
    CriterionScore,
    DetectedMisconception,
    Evaluation,
    GraderCapabilities,
    GraderIdentity,
    GraderRun,
)
from app.grading.scoring import (
    clamp_score,
    level_for,
    level_text,
    limit_sentences,
    overall_score,
    verified_quotes,
)
from app.llm import ChatModel, make_chat_model

ChatModelFactory = Callable[[Settings, str, str | None], ChatModel]


@dataclass(frozen=True)
class GraderContext:
    """What a grader factory may use (see :mod:`app.grading.registry`)."""

    settings: Settings
    model: str = ""  # the chosen model string; empty: none chosen
    api_key: str | None = None  # a key given for this session (typed in the app)
    chat_model_factory: ChatModelFactory = make_chat_model

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        model: str | None = None,
        api_key: str | None = None,
        chat_model_factory: ChatModelFactory = make_chat_model,
    ) -> GraderContext:
        """A context for ``model``, or for the configured model when it is None ("" is
        none at all)."""
        chosen = settings.llm_model if model is None else model.strip()
        return cls(settings, chosen, api_key, chat_model_factory)

    def chat_model(self) -> ChatModel:
        """The chosen language model; :class:`ConfigError` when none is chosen."""
        if not self.model:
            raise ConfigError(
                "this grader needs a language model: pass --model or set INTERVIEWER_LLM_MODEL "
                "(any litellm model string, or 'mock')"
            )
        return self.chat_model_factory(self.settings, self.model, self.api_key)


class Grader(Protocol):
    """Grades one answer to one item. Implementations must never raise for a bad answer.

    Graders subclass this protocol explicitly, and so share the default
    :meth:`stream_feedback`, which yields the evaluation's coaching.
    """

    name: ClassVar[str]
    capabilities: ClassVar[GraderCapabilities]

    @property
    def identity(self) -> GraderIdentity: ...

    async def grade(self, item: InterviewItem, answer: str) -> Evaluation: ...

    async def stream_feedback(
        self, item: InterviewItem, evaluation: Evaluation
    ) -> AsyncIterator[str]:
        """Conversational feedback on a graded answer; by default its coaching."""
        yield evaluation.coaching


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
    evaluations: list[Evaluation | None]  # in the order of the pairs; None where it failed
    errors: list[tuple[int, BaseException]]  # (index of the pair, what went wrong), in order


async def grade_many(
    grader: Grader,
    pairs: Sequence[tuple[InterviewItem, str]],
    concurrency: int = 8,
    on_result: Callable[[int, Evaluation], None] | None = None,
) -> BatchResult:
    """Grade many answers concurrently (at most ``concurrency`` at a time).

    One failure does not lose the others' results: it is recorded with its index. Each
    result is handed to ``on_result`` as soon as it is ready (to cache it, or to count it),
    so an interrupted batch keeps what it finished.
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))
    results: list[Evaluation | None] = [None] * len(pairs)
    errors: list[tuple[int, BaseException]] = []

    async def one(index: int, item: InterviewItem, answer: str) -> None:
        async with semaphore:
            try:
                results[index] = evaluation = await grader.grade(item, answer)
            except Exception as exc:  # partial failure: record it, keep the batch going
                errors.append((index, exc))
                return
        if on_result is not None:
            on_result(index, evaluation)

    async with asyncio.TaskGroup() as group:
        for index, (item, answer) in enumerate(pairs):
            group.create_task(one(index, item, answer))
    return BatchResult(results, sorted(errors, key=lambda e: e[0]))
