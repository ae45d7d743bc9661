"""Grading answers against rubrics: the :class:`Grader` protocol and batch grading
(:mod:`app.grading.base`), the evaluation models (:mod:`app.grading.models`), and the
registry of graders by name (:mod:`app.grading.registry`): offline by default, an LLM grader
when a model is configured, and a cosine baseline."""

from __future__ import annotations

from app.grading.base import Grader, GraderContext, grade_many
from app.grading.models import Evaluation, GraderCapabilities, GraderIdentity
from app.grading.registry import available, make_grader

__all__ = [
    "Evaluation",
    "Grader",
    "GraderCapabilities",
    "GraderContext",
    "GraderIdentity",
    "available",
    "grade_many",
    "make_grader",
]
