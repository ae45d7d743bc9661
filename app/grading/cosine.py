"""The cosine baseline: how close an answer is to the reference answer, and nothing more.

One criterion-agnostic score: the cosine between the answer's and the reference answer's
MiniLM embeddings, mapped linearly to 0-5 and clamped. The two constants are fit by least
squares on the train split (``evals/fit_cosine_grader.py``) and stored with their provenance
in ``cosine_params.json``. Every criterion gets the same score, there is no evidence, and the
coaching says it is a baseline: it is the row every eval report compares a grader against
(``interviewer eval --grader cosine``).
"""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from app.corpus.items import InterviewItem
from app.embeddings import MiniLMEncoder, get_encoder
from app.grading.base import Grader, GraderContext, ProposedCriterion, assemble
from app.grading.models import Evaluation, GraderCapabilities, GraderIdentity
from app.grading.scoring import clamp_score

PARAMS_FILE = Path(__file__).with_name("cosine_params.json")
COACHING = (
    "This score is a similarity baseline: it measures how close your wording is to the "
    "reference answer, not which rubric points you covered."
)


class CosineParams(BaseModel):
    """score = clamp(slope * cosine + intercept, 0, 5); unfitted, cosine 1 scores 5."""

    model_config = ConfigDict(frozen=True)

    slope: float = 5.0
    intercept: float = 0.0
    version: str = "untrained"
    fit: dict[str, object] = {}  # how and on what these were fit (documented, not used)


@lru_cache(maxsize=4)
def load_params(path: Path = PARAMS_FILE) -> CosineParams:
    """The fitted constants from ``cosine_params.json`` (the unfitted ones without it)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "{}"
    return CosineParams.model_validate_json(text)


def similarity(encoder: MiniLMEncoder, answer: str, reference: str) -> float:
    """Cosine of the two texts' (normalised) embeddings; an empty answer is one space."""
    vectors = encoder.encode([answer or " ", reference])
    return float(vectors[0] @ vectors[1])


class CosineGrader(Grader):
    """Plain embedding similarity to the reference answer, mapped to 0-5."""

    name = "cosine"
    capabilities = GraderCapabilities()

    def __init__(
        self, params: CosineParams | None = None, encoder: MiniLMEncoder | None = None
    ) -> None:
        self.params = params or load_params()
        self.encoder = encoder or get_encoder()

    @classmethod
    def from_context(cls, context: GraderContext) -> CosineGrader:
        return cls()

    @property
    def identity(self) -> GraderIdentity:
        return GraderIdentity(self.name, f"minilm-cosine@{self.params.version}")

    def grade_sync(self, item: InterviewItem, answer: str) -> Evaluation:
        started = time.perf_counter()
        cosine = similarity(self.encoder, answer, item.reference_answer)
        value = clamp_score(self.params.slope * cosine + self.params.intercept)
        why = f"Cosine similarity to the reference answer {cosine:.2f}, mapped to {value:.1f}/5."
        proposed = [ProposedCriterion(c.id, value, why) for c in item.rubric.criteria]
        run = self.identity.run(latency_ms=round((time.perf_counter() - started) * 1000, 2))
        return assemble(item, answer, proposed, [], COACHING, run)

    async def grade(self, item: InterviewItem, answer: str) -> Evaluation:
        return await asyncio.to_thread(self.grade_sync, item, answer)
