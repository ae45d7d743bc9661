"""Grading answers against rubrics: shared evaluation models, the offline grader (default)
and the LLM grader (any litellm model, falling back to the offline grader)."""

from __future__ import annotations

from app.config import Settings
from app.grading.base import Grader, grade_many
from app.grading.llm_grader import LLMGrader
from app.grading.models import CriterionScore, DetectedMisconception, Evaluation, GraderRun
from app.grading.offline import OfflineGrader
from app.llm import LLMClient


def make_grader(
    settings: Settings, model: str | None = None, api_key: str | None = None
) -> OfflineGrader | LLMGrader:
    """The LLM grader when a model is configured (or given), else the offline grader."""
    offline = OfflineGrader(settings.prompts_dir)
    chosen = model if model is not None else settings.llm_model
    if not chosen:
        return offline
    client = LLMClient.from_settings(settings, model=chosen, api_key=api_key)
    return LLMGrader(client, settings.prompts_dir, fallback=offline)


__all__ = [
    "CriterionScore",
    "DetectedMisconception",
    "Evaluation",
    "Grader",
    "GraderRun",
    "LLMGrader",
    "OfflineGrader",
    "grade_many",
    "make_grader",
]
