"""Errors a user can act on, in one hierarchy.

An :class:`InterviewerError` is a problem the user can do something about (a wrong setting,
a broken corpus file, an unreachable server, a recording that cannot be read): the CLI and
the UI catch this base class once and show its message as one line. Any other exception is
a bug and keeps its traceback. Each layer raises the subclass for its own concern, so no
caller needs to catch ``RuntimeError``, ``ValueError`` or ``KeyError`` as a stand-in.
"""

from __future__ import annotations

from typing import ClassVar


class InterviewerError(Exception):
    """A problem the user can act on; the CLI and UI show its message."""

    exit_code: ClassVar[int] = 1  # what ``interviewer`` exits with when this ends a command


class ConfigError(InterviewerError):
    """A setting, an installed package or a prompt file is missing or wrong."""


class CorpusError(InterviewerError):
    """The question corpus cannot be loaded or does not validate."""


class QuestionNotFoundError(CorpusError):
    """No question (or follow-up) with that id in the corpus, e.g. one a stored session asked
    before the corpus changed."""


class RetrievalError(InterviewerError):
    """The question index or the question selection failed."""


class SelectionError(RetrievalError):
    """The plan cannot be served (unknown role or topic, or nothing to ask)."""

    exit_code = 2  # the role or topics named on the command line are wrong


class IndexUnavailableError(RetrievalError):
    """Chroma could not be opened or reached; the message says where and why."""


class GradingError(InterviewerError):
    """An answer could not be graded."""


class LLMError(InterviewerError):
    """A language-model call failed for good (after retries, or a non-retryable error).

    Its message has already been through :func:`app.llm.redact.redact`.
    """

    def __init__(self, message: str, attempts: int = 1, partial: str = "") -> None:
        super().__init__(message)
        self.attempts = attempts
        self.partial = partial  # text a stream produced before it failed


class SpeechError(InterviewerError):
    """Speech could not be turned into text."""


class TranscriptionError(SpeechError):
    """Audio that cannot be transcribed; the message is meant for the candidate."""


class StoreError(InterviewerError):
    """The history database cannot be opened, or refused a write."""


class SessionNotFoundError(StoreError):
    """No interview session (or no turn of it) with that id."""

    exit_code = 2  # the session id named on the command line is wrong


class EngineError(InterviewerError):
    """An action the session's state does not allow (e.g. answering a finished one)."""
