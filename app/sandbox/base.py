"""The executor interface: what running untrusted code needs, whatever runs it.

A :class:`CodeExecutor` takes a :class:`RunRequest` (files, a command, limits, stdin) and
returns a :class:`RunResult`. Today the only implementation is
:class:`app.sandbox.bubblewrap.BubblewrapExecutor` (one machine, Linux namespaces); a remote
sandbox service can implement the same protocol where a deployment outgrows one machine.
Every implementation must pass ``tests/test_sandbox_contract.py``.

The contract, for implementers:

* ``argv[0] == "python"`` means the sandbox's Python: the same version as the app's
  interpreter, with the same third-party packages importable (pytest, NumPy).
* ``files`` are placed in the working directory (the current directory of the process).
  The directory itself is read-only; files named in ``readonly`` are read-only, the others
  writable. ``/tmp`` is a private writable scratch space. Nothing of the host is visible
  beyond the system and the interpreter's own files: no network, no home directory, no data
  directory, no environment variables of the caller.
* With ``result_channel``, the process finds a write-only pipe at the file descriptor
  named in ``$RESULT_FD``; what it writes there comes back in :attr:`RunResult.channel`.
  It lets a trusted program inside the sandbox report without sharing stdout with the
  code it runs.
* Limits are enforced by the executor, not by the code run. When one is hit the run still
  ends with a result (``timeout`` or ``killed``) that says which limit it was.
* An executor that cannot run code safely returns ``unavailable`` with a reason a person
  can act on. It never falls back to running code without the sandbox.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Named defaults, one line of justification each.
WALL_S = 10.0  # wall clock for one run: the corpus default for a coding question's tests
CPU_S = 12  # CPU seconds (a little over the wall clock): stops busy threads that share it
MEMORY_MB = 512  # address space: Python, pytest and NumPy start in ~150 MB of it
FILE_MB = 16  # largest file (and /tmp holds TMP_FILES times that): tests write small files
TMP_FILES = 4  # /tmp is a tmpfs of TMP_FILES * file_mb, so many files cannot fill memory
NOFILE = 256  # open files: pytest, a test's own files and a few event loops fit easily
NPROC = 64  # tasks (processes and threads) of the sandbox user: a pool fits, a fork bomb stops
OUTPUT_BYTES = 1_000_000  # kept of stdout, of stderr and of the result channel, each

MAX_WALL_S = 600.0
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class Limits(BaseModel):
    """Resource limits for one run; each is enforced by the executor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_s: float = Field(default=WALL_S, gt=0, le=MAX_WALL_S)
    cpu_s: int = Field(default=CPU_S, ge=1, le=int(MAX_WALL_S))
    memory_mb: int = Field(default=MEMORY_MB, ge=32, le=16_384)
    file_mb: int = Field(default=FILE_MB, ge=1, le=4096)
    nofile: int = Field(default=NOFILE, ge=16, le=65_536)
    nproc: int = Field(default=NPROC, ge=4, le=4096)
    output_bytes: int = Field(default=OUTPUT_BYTES, ge=1024, le=100_000_000)


class RunRequest(BaseModel):
    """One program to run: files for its working directory, a command, limits, stdin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: dict[str, str | bytes] = Field(default_factory=dict)
    readonly: frozenset[str] = frozenset()
    argv: list[str] = Field(min_length=1)
    limits: Limits = Field(default_factory=Limits)
    stdin: bytes = b""
    result_channel: bool = False

    @field_validator("files")
    @classmethod
    def _file_names(cls, files: dict[str, str | bytes]) -> dict[str, str | bytes]:
        for name in files:
            if not FILE_NAME.match(name) or name in {".", ".."}:
                raise ValueError(
                    f"file name {name!r}: use a plain name (letters, digits, '_', '.', '-')"
                )
        return files

    @model_validator(mode="after")
    def _readonly_known(self) -> RunRequest:
        unknown = sorted(self.readonly - set(self.files))
        if unknown:
            raise ValueError(f"readonly names files that are not in `files`: {unknown}")
        return self


class RunStatus(StrEnum):
    EXITED = "exited"  # the program ended on its own; see exit_code
    TIMEOUT = "timeout"  # the wall-clock limit was hit and everything was killed
    KILLED = "killed"  # ended by a signal: a CPU or file-size limit, a crash
    UNAVAILABLE = "unavailable"  # the executor cannot run code here; nothing ran
    ERROR = "error"  # the sandbox itself failed to start the program


class RunResult(BaseModel):
    """What one run produced. Output streams are capped at ``Limits.output_bytes``."""

    model_config = ConfigDict(frozen=True)

    status: RunStatus
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    channel: str = ""
    truncated: bool = False  # some output was over the cap and was dropped
    duration_s: float = 0.0
    reason: str = ""  # for anything but a clean exit: what happened, in words

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.EXITED and self.exit_code == 0


class Availability(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    reason: str = ""


@runtime_checkable
class CodeExecutor(Protocol):
    """Runs a :class:`RunRequest` in isolation. See the module docstring for the contract."""

    name: ClassVar[str]

    def available(self) -> Availability:
        """Whether this executor can run code here; cheap after the first call."""
        ...

    async def run(self, request: RunRequest) -> RunResult:
        """Run one request to completion. Never raises for anything the code does."""
        ...


def unavailable(reason: str) -> RunResult:
    return RunResult(status=RunStatus.UNAVAILABLE, reason=reason)
