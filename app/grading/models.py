"""The evaluation of one answer: what every grader produces and the UI, store and evals read."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from app.llm.base import Usage


class CriterionScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    criterion_id: str
    name: str
    weight: float
    score: float = Field(ge=0, le=5)
    justification: str
    evidence: list[str] = []  # verbatim quotes from the answer (checked in code)
    missed_key_points: list[str] = []


class DetectedMisconception(BaseModel):
    model_config = ConfigDict(frozen=True)

    claim: str
    correction: str | None = None
    evidence: str | None = None  # the answer's words that assert it (verbatim)
    from_corpus: bool = True  # False: free text from an LLM grader
    # Listed for the question, or quoted verbatim from the answer. Only a verified one costs
    # points; an unverified one is shown as a possible misconception.
    verified: bool = True


class GraderRun(BaseModel):
    """Which grader produced an evaluation, how, and at what cost."""

    model_config = ConfigDict(frozen=True)

    grader: str  # a name registered in app.grading.registry
    model: str | None = None
    prompt_version: str | None = None
    fallback_reason: str | None = None  # set when an LLM failed and the offline grader graded
    latency_ms: float = 0.0
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    dropped_quotes: int = 0  # LLM quotes not found verbatim in the answer


@dataclass(frozen=True)
class GraderCapabilities:
    """What a grader can do, declared rather than discovered by isinstance."""

    streams_feedback: bool = False  # conversational feedback beyond the evaluation's coaching
    quotes_evidence: bool = False  # criterion scores come with quotes from the answer
    costs_money: bool = False  # calls a paid service (and so is worth caching and capping)
    runs_code: bool = False  # executes the candidate's code


@dataclass(frozen=True)
class GraderIdentity:
    """Which grader, which model, which prompt: recorded in every evaluation's
    :class:`GraderRun`, in session records, and part of the eval cache key."""

    name: str  # a name registered in app.grading.registry
    model: str | None = None
    prompt_version: str | None = None

    def run(
        self,
        latency_ms: float,
        *,
        attempts: int = 1,
        usage: Usage | None = None,
        model: str | None = None,
    ) -> GraderRun:
        """A :class:`GraderRun` for one evaluation by this grader (``model``: the model the
        provider says answered, when it names one)."""
        usage = usage or Usage()
        return GraderRun(
            grader=self.name,
            model=model or self.model,
            prompt_version=self.prompt_version,
            latency_ms=latency_ms,
            attempts=attempts,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
        )


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_id: str
    criteria: list[CriterionScore]
    misconceptions: list[DetectedMisconception] = []
    missed_key_points: list[str] = []
    overall: float = Field(ge=0, le=5)
    level: int = Field(ge=0, le=5)
    level_label: str
    level_description: str = ""
    coaching: str
    flags: list[str] = []  # e.g. empty, off_topic, keyword_list, injection_attempt
    grader: GraderRun

    @property
    def is_fallback(self) -> bool:
        return self.grader.fallback_reason is not None
