"""Grading answers against rubrics: shared evaluation models, the :class:`Grader` protocol,
batch grading, and the registry of graders by name (offline by default, an LLM grader when
a model is configured, a cosine baseline)."""

from __future__ import annotations

from app.grading.base import (
    Grader,
    GraderCapabilities,
    GraderContext,
    GraderIdentity,
    grade_many,
)
from app.grading.models import CriterionScore, DetectedMisconception, Evaluation, GraderRun
from app.grading.registry import available, make_grader

__all__ = [
    "CriterionScore",
    "DetectedMisconception",
    "Evaluation",
    "Grader",
    "GraderCapabilities",
    "GraderContext",
    "GraderIdentity",
    "GraderRun",
    "available",
    "grade_many",
    "make_grader",
]
