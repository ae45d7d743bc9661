"""What the candidate chose at setup: the one type the selector, the engine, the CLI and the
UI share for it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.corpus.models import Role

MIN_LENGTH, MAX_LENGTH = 3, 15
DEFAULT_SEED = 7  # the selector's seed when a setup names none (the engine fills in its own)


class Mode(StrEnum):
    PRACTICE = "practice"  # feedback after every answer
    MOCK = "mock"  # feedback held to the end, like a real loop


class InterviewSetup(BaseModel):
    """Role, topics, difficulty, length, mode and seed of one interview."""

    model_config = ConfigDict(frozen=True)

    role: Role
    topics: list[str] = Field(min_length=1)
    difficulty: int = Field(default=3, ge=1, le=5)
    length: int = Field(default=5, ge=MIN_LENGTH, le=MAX_LENGTH)
    mode: Mode = Mode.PRACTICE
    seed: int | None = None  # None: the engine's default seed

    @property
    def rng_seed(self) -> int:
        """The seed choices are drawn with."""
        return DEFAULT_SEED if self.seed is None else self.seed
