"""Graders by name: the one module, besides the graders' own, that names concrete graders.

A grader plugs in with one module (a class following :class:`app.grading.base.Grader` and a
factory taking a :class:`GraderContext`) and one line in :data:`GRADERS`. Everything else
(services, the engine, ``interviewer eval --grader NAME``, the UI) asks for graders by name
and uses them through the protocol.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import ConfigError
from app.grading.base import Grader, GraderContext
from app.grading.cosine import CosineGrader
from app.grading.llm_grader import LLMGrader
from app.grading.offline import OfflineGrader

GraderFactory = Callable[[GraderContext], Grader]

DEFAULT_OFFLINE = "offline"  # used when no model is configured, and as the LLM's fallback
DEFAULT_WITH_MODEL = "llm"  # used when a model is configured (or given)

GRADERS: dict[str, GraderFactory] = {
    "offline": OfflineGrader.from_context,
    "llm": lambda context: LLMGrader.from_context(context, build(DEFAULT_OFFLINE, context)),
    "cosine": CosineGrader.from_context,
}


def available() -> list[str]:
    """The registered grader names, in registration order."""
    return list(GRADERS)


def build(name: str, context: GraderContext) -> Grader:
    """The grader registered as ``name``; :class:`ConfigError` for an unknown name."""
    factory = GRADERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown grader {name!r}; choose from: {', '.join(available())}")
    return factory(context)


def make_grader(name: str | None, context: GraderContext) -> Grader:
    """The grader called ``name``; with no name, the LLM grader when a model is chosen (in
    the context, from the settings or the caller) and the offline grader otherwise."""
    if name is None:
        name = DEFAULT_WITH_MODEL if context.model else DEFAULT_OFFLINE
    return build(name, context)
