"""The evaluation of one answer: what every grader produces and the UI, store and evals read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
