"""Run a coding question's tests against a candidate's ``solution.py``, in the sandbox.

:func:`run_coding_tests` is the one path every caller uses: ``interviewer code run``, the
corpus check and (later) the code grader. It returns a :class:`TestRunReport`: a status
(passed, failed, error, timeout, killed, unavailable), how many tests passed, the
correctness share, each test's name and message, the time taken and a reason.

Threat model
------------
The candidate's code runs in the same interpreter as the tests (that is what a test is), so
anything in that process can be read or changed by it. The report therefore rests on
things the candidate cannot forge easily:

* **The expected tests come from our side.** The test module is parsed here with ``ast``,
  outside the sandbox: every module-level ``def test*`` and every ``test*`` method of a
  ``class Test*``. A parametrized test counts once and passes only if all of its cases
  pass. A test the run does not report is a failure.
* **Results travel on a dedicated pipe, never stdout.** The trusted runner
  (``pytest_runner.py``, read-only in the sandbox) gets a random per-run nonce on stdin and
  reads it before any candidate code is imported; it never lives in module globals. Lines
  without the nonce are ignored, and a run counts only if it ends with a ``done`` line, so
  ``os._exit(0)`` at import, or any early exit, is an ``error`` and never a pass. What the
  candidate prints, on stdout or on any file descriptor, cannot be mistaken for results.
* **Tests and runner are read-only.** They are read-only bind mounts in a read-only
  directory; ``solution.py`` and ``/tmp`` are the only writable places. The candidate's
  code may not read them either (the audit hook below), and a hidden run's printed output
  is never returned, so hidden tests do not leak through a print.
* **An audit hook** (``sys.addaudithook``, installed before the candidate's import) blocks
  process creation, ctypes, sockets, the gc and frame introspection that reaches the
  runner, trace and profile functions, and writes outside ``/tmp``. A blocked event fails
  the test that triggered it, or the whole run when it happens at import.
* **Tampering is looked for.** The runner snapshots pytest's and pluggy's modules and
  classes, the builtins and the import machinery before the import and compares after it
  and after the tests; two canary tests with random names, delivered on stdin and never
  written to disk, must fail. A change or a passing canary scores the run 0 (``error``).

What stays possible for a determined attacker in-process: the nonce lives in the runner's
memory, and the runner's plugin is reachable from ``sys.meta_path`` (pytest's assertion
rewriter holds the config, which holds the plugin manager, which holds the plugin and its
closure); frames can still be reached through stdlib APIs that hand them out and that the
hook does not list (for instance a frame attribute read from code compiled with a forged
file name, or trusted code induced to call a blocked function through a ``functools.partial``
the candidate planted); pytest internals patched selectively so the canaries still fail.
Any of these lets a solution forge its *own* score and nothing more: the operating-system
sandbox (:mod:`app.sandbox.bubblewrap`) still holds the whole process, with no network, no
host files beyond the system's, no data directory, no keys, and hard limits on time,
memory, processes and output. The in-process layer keeps honest mistakes and casual
gaming from reading as passes; the OS layer is the security boundary.
"""

from __future__ import annotations

import ast
import math
import secrets
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from app.sandbox.base import CodeExecutor, Limits, RunRequest, RunResult, RunStatus

RUNNER_FILE = "_runner.py"
TEST_FILE = "test_solution.py"
SOLUTION_FILE = "solution.py"
RUNNER_SOURCE_PATH = Path(__file__).resolve().parent / "pytest_runner.py"
STARTUP_S = 2.0  # added to a question's time limit: pytest's own start-up is not the candidate's
MESSAGE_CHARS = 1000
OUTPUT_CHARS = 10_000
CANARIES = 2


class TestRunStatus(StrEnum):
    __test__ = False  # not a pytest test class

    PASSED = "passed"  # every expected test passed
    FAILED = "failed"  # the run finished; some tests failed (or could not be collected)
    ERROR = "error"  # no trustworthy result: import failure, early exit, tampering, sandbox fault
    TIMEOUT = "timeout"  # the wall-clock limit ended the run; unreported tests failed
    KILLED = "killed"  # a CPU or file-size limit or a crash ended it; unreported tests failed
    UNAVAILABLE = "unavailable"  # nothing could run here (no sandbox, no pytest)


class TestOutcome(BaseModel):
    __test__: ClassVar[bool] = False
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    message: str = ""


class TestRunReport(BaseModel):
    __test__: ClassVar[bool] = False
    model_config = ConfigDict(frozen=True)

    status: TestRunStatus
    passed: int
    total: int
    correctness: float  # passed / total, and 0 for error or unavailable
    tests: list[TestOutcome]
    duration_s: float
    reason: str = ""  # why it did not pass, in words
    output: str = ""  # the start of what the run printed (stdout, then stderr)

    def summary(self) -> dict[str, object]:
        """The fields ``interviewer code run --json`` prints."""
        fields: dict[str, object] = {
            "status": self.status.value,
            "passed": self.passed,
            "total": self.total,
            "correctness": self.correctness,
            "tests": [t.model_dump() for t in self.tests],
            "duration_s": self.duration_s,
        }
        if self.status != TestRunStatus.PASSED:
            fields["reason"] = self.reason
        return fields


class CodingTests(Protocol):
    """What a coding question's ``coding`` block provides (see app.corpus.models.CodingSpec)."""

    @property
    def visible_tests(self) -> str: ...
    @property
    def hidden_tests(self) -> str: ...
    @property
    def time_limit_s(self) -> float: ...
    @property
    def memory_mb(self) -> int: ...


def expected_tests(source: str) -> list[str]:
    """The tests a module defines, as pytest names them (``test_x``, ``TestY::test_z``).

    Raises :class:`SyntaxError` if the module does not parse (a corpus error, not the
    candidate's).
    """
    tree = ast.parse(source)
    names: list[str] = []
    functions = ast.FunctionDef | ast.AsyncFunctionDef
    for node in tree.body:
        if isinstance(node, functions) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            if any(isinstance(n, functions) and n.name == "__init__" for n in node.body):
                continue  # pytest does not collect classes with an __init__
            for member in node.body:
                if isinstance(member, functions) and member.name.startswith("test"):
                    names.append(f"{node.name}::{member.name}")
    return list(dict.fromkeys(names))


def _base_name(nodeid: str) -> str:
    rest = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    return rest.split("[", 1)[0]


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append({"t": "\t", "n": "\n", "\\": "\\"}.get(following, following))
        else:
            out.append(char)
    return "".join(out)


class _Records:
    """The runner's authenticated lines, parsed."""

    def __init__(self, channel: str, nonce: str) -> None:
        self.kinds: dict[str, list[list[str]]] = {}
        for line in channel.split("\n"):
            fields = line.split("\t")
            if len(fields) < 2 or fields[0] != nonce:
                continue
            self.kinds.setdefault(fields[1], []).append([_unescape(f) for f in fields[2:]])

    def has(self, kind: str) -> bool:
        return kind in self.kinds

    def first(self, kind: str) -> list[str]:
        return self.kinds.get(kind, [[]])[0]

    def all(self, kind: str) -> list[list[str]]:
        return self.kinds.get(kind, [])


def _cap(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 5] + " [...]"


def _report(
    status: TestRunStatus,
    names: list[str],
    result: RunResult | None,
    reason: str,
    outcomes: dict[str, TestOutcome] | None = None,
    default_message: str = "",
    counts: bool = True,
) -> TestRunReport:
    outcomes = outcomes or {}
    tests = [
        outcomes.get(name, TestOutcome(name=name, passed=False, message=default_message))
        for name in names
    ]
    if not counts:
        note = default_message or reason
        tests = [TestOutcome(name=t.name, passed=False, message=note) for t in tests]
    passed = sum(t.passed for t in tests)
    output = ""
    if result is not None:
        output = result.stdout + ("\n" if result.stdout and result.stderr else "") + result.stderr
        output = output[:OUTPUT_CHARS]
    return TestRunReport(
        status=status,
        passed=passed,
        total=len(names),
        correctness=round(passed / len(names), 4) if names and counts else 0.0,
        tests=tests,
        duration_s=round(result.duration_s, 3) if result is not None else 0.0,
        reason=_cap(reason, 2000),
        output=output,
    )


def _outcomes(records: _Records, names: list[str], canaries: set[str]) -> dict[str, TestOutcome]:
    """Per expected test: passed only if every collected case of it reported a pass."""
    collected = [n for n in records.first("collected") if _base_name(n) not in canaries]
    results = {fields[0]: fields for fields in records.all("test") if len(fields) >= 3}
    outcomes: dict[str, TestOutcome] = {}
    for name in names:
        cases = [n for n in collected if _base_name(n) == name]
        if not cases:
            continue  # not collected: the caller's default message explains
        passed = True
        message = ""
        for case in cases:
            fields = results.get(case)
            if fields is None:
                passed, message = False, message or "did not finish"
            elif fields[1] != "1":
                label = case.split("::", 1)[-1]
                passed = False
                if not message:
                    suffix = label[len(label.split("[", 1)[0]) :]
                    message = (f"{suffix}: " if suffix else "") + fields[2]
        outcomes[name] = TestOutcome(name=name, passed=passed, message=_cap(message))
    return outcomes


def _tampering(records: _Records, canaries: set[str], finished: bool) -> str | None:
    """Why the run cannot be trusted, if it cannot: an explicit finding or a canary's fate."""
    if records.has("tampered"):
        found = dict.fromkeys(fields[0] for fields in records.all("tampered") if fields)
        return "the solution tampered with the test run (" + "; ".join(found) + ")"
    reported = {_base_name(f[0]): f[1] for f in records.all("test") if len(f) >= 2}
    collected = {_base_name(n) for n in records.first("collected")}
    for canary in sorted(canaries & collected):
        if reported.get(canary) == "1":
            return "the solution tampered with the test run (a test that must fail passed)"
        if finished and canary not in reported:
            code = (records.first("done") or [""])[0]
            where = _in_progress(records, canaries)
            during = f" during {where}" if where else ""
            if code == "2":
                return (
                    f"the test session was interrupted{during} (KeyboardInterrupt or pytest.exit)"
                )
            if code == "3":
                return f"pytest stopped with an internal error{during}"
            return "the solution tampered with the test run (a test that must run never reported)"
    return None


def limits_for(time_limit_s: float, memory_mb: int) -> Limits:
    wall = time_limit_s + STARTUP_S
    return Limits(wall_s=wall, cpu_s=math.ceil(wall) + 1, memory_mb=memory_mb)


async def run_tests(
    code: str | bytes,
    tests: str,
    *,
    time_limit_s: float = 10.0,
    memory_mb: int = 512,
    executor: CodeExecutor | None = None,
) -> TestRunReport:
    """Run the pytest module ``tests`` against ``code`` saved as ``solution.py``."""
    if executor is None:
        from app.sandbox import get_executor

        executor = get_executor()
    try:
        names = expected_tests(tests)
    except SyntaxError as exc:
        return _report(TestRunStatus.ERROR, [], None, f"the test module does not parse: {exc}")
    availability = executor.available()
    if not availability.ok:
        return _report(
            TestRunStatus.UNAVAILABLE,
            names,
            None,
            f"coding questions are unavailable: {availability.reason}",
            default_message="not run",
            counts=False,
        )
    nonce = secrets.token_hex(16)
    canaries = {f"test_{secrets.token_hex(6)}" for _ in range(CANARIES)}
    settings = {"nonce": nonce, "canaries": sorted(canaries)}
    import json

    request = RunRequest(
        files={
            RUNNER_FILE: RUNNER_SOURCE_PATH.read_text(encoding="utf-8"),
            TEST_FILE: tests,
            SOLUTION_FILE: code,
        },
        readonly=frozenset({RUNNER_FILE, TEST_FILE}),
        argv=["python", RUNNER_FILE, TEST_FILE],
        limits=limits_for(time_limit_s, memory_mb),
        stdin=json.dumps(settings).encode(),
        result_channel=True,
    )
    result = await executor.run(request)
    return interpret(result, names, nonce, canaries, request.limits)


def interpret(
    result: RunResult, names: list[str], nonce: str, canaries: set[str], limits: Limits
) -> TestRunReport:
    """Turn one sandboxed run of the runner into a report (see the module docstring)."""
    if result.status == RunStatus.UNAVAILABLE:
        reason = f"coding questions are unavailable: {result.reason}"
        return _report(TestRunStatus.UNAVAILABLE, names, result, reason, counts=False)
    if result.status == RunStatus.ERROR:
        detail = result.stderr.strip()[-500:] or result.reason
        return _report(
            TestRunStatus.ERROR, names, result, f"the sandbox failed: {detail}", counts=False
        )
    records = _Records(result.channel, nonce)
    finished = records.has("done")
    if records.has("unavailable"):
        reason = f"coding questions are unavailable: {records.first('unavailable')[0]}"
        return _report(TestRunStatus.UNAVAILABLE, names, result, reason, counts=False)
    tampered = _tampering(records, canaries, finished)
    if tampered:
        reason = f"{tampered}; it scores 0"
        return _report(TestRunStatus.ERROR, names, result, reason, counts=False)
    if records.has("import-error"):
        detail = records.first("import-error")[0]
        reason = f"{SOLUTION_FILE} failed to import: {detail}"
        return _report(TestRunStatus.ERROR, names, result, reason, counts=False)
    violation = [f for f in records.all("violation") if f and f[0] == "import"]
    if violation:
        reason = f"{SOLUTION_FILE} did something not allowed at import: {violation[0][1]}"
        return _report(TestRunStatus.ERROR, names, result, reason, counts=False)
    outcomes = _outcomes(records, names, canaries)
    if result.status in (RunStatus.TIMEOUT, RunStatus.KILLED):
        status = (
            TestRunStatus.TIMEOUT if result.status == RunStatus.TIMEOUT else TestRunStatus.KILLED
        )
        what = (
            f"the tests did not finish within the {limits.wall_s - STARTUP_S:g} s time limit"
            if status == TestRunStatus.TIMEOUT
            else f"the run was stopped: {result.reason}"
        )
        where = _in_progress(records, canaries)
        reason = what + (f" (while running {where})" if where else "")
        return _report(status, names, result, reason, outcomes, default_message=f"not run: {what}")
    if not finished:
        if not records.has("started"):
            stage = "before the test runner started"
        elif not records.has("imported"):
            stage = f"while importing {SOLUTION_FILE}"
        else:
            where = _in_progress(records, canaries)
            stage = f"while running {where}" if where else "while the tests ran"
        code = f" with exit code {result.exit_code}" if result.exit_code is not None else ""
        reason = (
            f"the run ended early{code} {stage}, before it reported its results"
            " (os._exit, a crash or a signal); it scores 0"
        )
        return _report(TestRunStatus.ERROR, names, result, reason, counts=False)
    exit_code = (records.first("done") or ["0"])[0]
    if exit_code in {"3", "4"} and not records.first("collected"):
        detail = _cap(result.stdout + result.stderr, 500)
        reason = f"pytest could not run the tests (exit code {exit_code}): {detail}"
        return _report(TestRunStatus.ERROR, names, result, reason, counts=False)
    collect_error = records.first("collect-error")
    default = f"not collected: {collect_error[0]}" if collect_error else "not collected"
    report = _report(TestRunStatus.FAILED, names, result, "", outcomes, default_message=default)
    if names and report.passed == report.total:
        return report.model_copy(update={"status": TestRunStatus.PASSED})
    failed = report.total - report.passed
    reason = f"{failed} of {report.total} tests failed"
    if collect_error:
        reason = f"the tests could not be collected: {collect_error[0]}"
    elif not names:
        reason = "the test module defines no tests"
    return report.model_copy(update={"reason": _cap(reason, 2000)})


def _in_progress(records: _Records, canaries: set[str]) -> str:
    """The first collected test that never reported (the one running when the run ended)."""
    done = {f[0] for f in records.all("test") if f}
    pending = [
        n for n in records.first("collected") if n not in done and _base_name(n) not in canaries
    ]
    return _base_name(pending[0]) if pending else ""


async def run_coding_tests(
    spec: CodingTests,
    code: str | bytes,
    *,
    visible: bool = False,
    executor: CodeExecutor | None = None,
) -> TestRunReport:
    """A question's hidden tests (or its visible ones) against ``code``: the app's one path.

    A hidden run keeps what the code printed to itself (``output`` is empty): a solution can
    read the test module it runs beside and print it. Test names and failure messages stay.
    """
    report = await run_tests(
        code,
        spec.visible_tests if visible else spec.hidden_tests,
        time_limit_s=spec.time_limit_s,
        memory_mb=spec.memory_mb,
        executor=executor,
    )
    return report if visible else report.model_copy(update={"output": ""})
