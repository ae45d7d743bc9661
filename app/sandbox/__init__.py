"""Running untrusted code: the executor interface, its implementations, the test runner.

This package sits in a low layer: it imports only the standard library, pydantic and
:mod:`app.config`. The corpus check, the code grader and the CLI use it; it uses none of
them.

    executor = get_executor()            # the configured one (INTERVIEWER_CODE_EXECUTOR)
    executor.available()                 # Availability(ok, reason), probed once
    await executor.run(RunRequest(...))  # RunResult

Executors are registered by name in :data:`EXECUTORS`. Nothing here ever runs code outside
a sandbox: when the configured executor is unavailable, runs return ``unavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.sandbox.base import (
    Availability,
    CodeExecutor,
    Limits,
    RunRequest,
    RunResult,
    RunStatus,
)
from app.sandbox.bubblewrap import BubblewrapExecutor

DEFAULT_EXECUTOR = "bubblewrap"

EXECUTORS: dict[str, Callable[[], CodeExecutor]] = {
    BubblewrapExecutor.name: BubblewrapExecutor,
}

_instances: dict[str, CodeExecutor] = {}
_lock = threading.Lock()


def get_executor(name: str | None = None) -> CodeExecutor:
    """The executor registered under ``name`` (default: the configured one), one per process.

    One instance per name, so the availability probe runs once per process.
    """
    if name is None:
        from app.config import get_settings

        name = get_settings().code_executor
    with _lock:
        if name not in _instances:
            try:
                factory = EXECUTORS[name]
            except KeyError:
                known = ", ".join(sorted(EXECUTORS))
                raise ValueError(f"unknown code executor {name!r}; known: {known}") from None
            _instances[name] = factory()
        return _instances[name]


__all__ = [
    "DEFAULT_EXECUTOR",
    "EXECUTORS",
    "Availability",
    "BubblewrapExecutor",
    "CodeExecutor",
    "Limits",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "get_executor",
]
