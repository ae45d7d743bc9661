"""All settings in one place, read from ``INTERVIEWER_*`` environment variables or ``.env``.

Every other module takes a :class:`Settings` (or the parts it needs) instead of reading the
environment itself, so tests and the UI can run with settings of their own.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _bundled_or_repo(name: str) -> Path:
    """A top-level data folder: the checkout's own, else the copy bundled into a wheel."""
    in_repo = REPO_DIR / name
    return in_repo if in_repo.is_dir() else PACKAGE_DIR / "_bundled" / name


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "senior-python-interviewer"


class Settings(BaseSettings):
    """Runtime configuration. Empty ``llm_model`` means fully offline operation."""

    model_config = SettingsConfigDict(
        env_prefix="INTERVIEWER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    corpus_dir: Path = Field(default_factory=lambda: _bundled_or_repo("corpus"))
    prompts_dir: Path = Field(default_factory=lambda: _bundled_or_repo("prompts"))
    # Question packs: extra corpus folders loaded after the built-in corpus, in this order.
    # INTERVIEWER_CORPUS_PACKS is a JSON list or an os.pathsep-separated ("a:b") string.
    corpus_packs: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Chroma: an embedded PersistentClient under data_dir, or a `chroma run` server.
    chroma_mode: Literal["embedded", "server"] = "embedded"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8000
    chroma_collection: str = "questions"

    # LLM (any litellm model string, or "mock" for the built-in deterministic model).
    # Empty: offline grader and corpus-driven interviewer.
    llm_model: str = ""
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_backoff_base_s: float = Field(default=0.5, ge=0)
    llm_backoff_max_s: float = Field(default=20.0, ge=0)
    llm_concurrency: int = Field(default=8, ge=1, le=256)

    # Speech to text: local faster-whisper, or an OpenAI-compatible endpoint.
    transcription_model: str = ""  # e.g. "whisper-1"; empty = local Whisper base
    transcription_api_base: str | None = None
    max_audio_seconds: float = Field(default=180.0, gt=0)

    # Where candidates' code runs: a name registered in app.sandbox.EXECUTORS. Code never runs
    # outside a sandbox; if this one is unavailable, coding questions say so.
    code_executor: str = "bubblewrap"

    seed: int = 7
    # Embed every rubric text at start (kept on disk) so each question's first answer grades
    # as fast as the rest; off, they are embedded on first use instead.
    warm_vectors: bool = True

    @field_validator("llm_model", "transcription_model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("corpus_packs", mode="before")
    @classmethod
    def _pack_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(os.pathsep) if part.strip()]
        return value

    @field_validator("corpus_packs")
    @classmethod
    def _expand_packs(cls, value: list[Path]) -> list[Path]:
        return [path.expanduser() for path in value]

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "interviews.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def resolve_api_key(settings: Settings, explicit: str | None = None) -> str | None:
    """The API key for a model call: one given for this call (typed in the app), else the
    configured ``INTERVIEWER_LLM_API_KEY``. None leaves litellm to read the provider's own
    variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...)."""
    if explicit:
        return explicit
    return settings.llm_api_key.get_secret_value() if settings.llm_api_key else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
