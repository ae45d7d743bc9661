"""The test runner against hostile solutions: every attack ends as an explained report.

Each case is a ``solution.py`` run against the same small pytest module through
:func:`app.sandbox.testrun.run_tests`, the path the app and ``interviewer code run`` use.
Gaming the runner must score 0; blocked actions fail the test that tried them (or the run,
at import); limits end the run as timeout or killed; nothing reaches the host.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.sandbox import EXECUTORS
from app.sandbox.base import Availability, Limits, RunRequest, RunResult, RunStatus
from app.sandbox.testrun import (
    TestRunReport,
    TestRunStatus,
    expected_tests,
    interpret,
    run_tests,
)

TESTS = """
import pytest

from solution import add


def test_small():
    assert add(1, 2) == 3


@pytest.mark.parametrize(("a", "b"), [(0, 0), (-1, 1), (10, 5)])
def test_cases(a, b):
    assert add(a, b) == a + b


class TestTypes:
    def test_floats(self):
        assert add(0.1, 0.2) == pytest.approx(0.3)


def test_files(tmp_path, capsys):
    (tmp_path / "sum.txt").write_text(str(add(2, 2)))
    print("written")
    assert (tmp_path / "sum.txt").read_text() == "4"
    assert capsys.readouterr().out == "written\\n"
"""
NAMES = ["test_small", "test_cases", "TestTypes::test_floats", "test_files"]
GOOD = "def add(a, b):\n    return a + b\n"
LIMIT_S = 3.0
FAKE_KEY = "sk-fake-key-for-the-sandbox-tests-0123456789"


@pytest.fixture(scope="module", autouse=True)
def _sandbox_available() -> None:
    availability = EXECUTORS["bubblewrap"]().available()
    if not availability.ok:
        if os.environ.get("CI"):
            pytest.fail(f"bubblewrap must be available in CI: {availability.reason}")
        pytest.skip(f"no sandbox here: {availability.reason}")


@pytest.fixture(autouse=True)
def _keys_in_our_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERVIEWER_LLM_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def check(code: str | bytes, tests: str = TESTS, limit: float = LIMIT_S) -> TestRunReport:
    if isinstance(code, str):
        code = textwrap.dedent(code)
    return asyncio.run(run_tests(code, tests, time_limit_s=limit, memory_mb=256))


def blocked_messages(report: TestRunReport) -> list[str]:
    return [t.message for t in report.tests if "blocked in the sandbox" in t.message]


# -- the honest paths -------------------------------------------------------------------------


def test_expected_tests_come_from_the_module_text() -> None:
    assert expected_tests(TESTS) == NAMES
    assert (
        expected_tests("class TestX:\n    def __init__(self): ...\n    def test_a(self): ...") == []
    )
    with pytest.raises(SyntaxError):
        expected_tests("def test_(:")


def test_a_correct_solution_passes() -> None:
    report = check(GOOD)
    assert report.status == TestRunStatus.PASSED, report
    assert (report.passed, report.total, report.correctness) == (4, 4, 1.0)
    assert [t.name for t in report.tests] == NAMES
    assert report.reason == ""
    assert report.summary()["status"] == "passed" and "reason" not in report.summary()


def test_a_partly_wrong_solution_fails_with_messages() -> None:
    report = check(
        """
        def add(a, b):
            if a == 10:
                return 0
            return a + b
        """
    )
    assert report.status == TestRunStatus.FAILED
    assert (report.passed, report.total, report.correctness) == (3, 4, 0.75)
    failed = [t for t in report.tests if not t.passed]
    assert [t.name for t in failed] == ["test_cases"]
    assert failed[0].message.startswith("[10-5]: assert 0 == (10 + 5)")
    assert report.reason == "1 of 4 tests failed"


def test_ordinary_library_use_is_not_blocked() -> None:
    report = check(
        """
        import asyncio, collections, dataclasses, inspect, logging, tempfile, threading
        import traceback, typing, warnings
        import numpy as np

        log = logging.getLogger("solution")
        Pair = collections.namedtuple("Pair", "a b")
        T = typing.TypeVar("T")

        @dataclasses.dataclass
        class Box(typing.Generic[T]):
            value: T

        def add(a, b):
            try:
                raise ValueError("inner")
            except ValueError:
                log.exception("handled")
                traceback.format_exc()
            warnings.warn("careful", stacklevel=2)
            with tempfile.TemporaryDirectory() as folder:
                open(f"{folder}/x", "w").write("ok")
            worker = threading.Thread(target=lambda: None)
            worker.start()
            worker.join()
            async def twice():
                await asyncio.sleep(0)
                return Pair(a, b)
            pair = asyncio.run(twice())
            inspect.signature(add)
            total = float(np.add(pair.a, pair.b)) if isinstance(a, float) else pair.a + pair.b
            return Box(total).value
        """
    )
    assert report.status == TestRunStatus.PASSED, report


# -- limits and code that never returns -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        pytest.param(
            "def add(a, b):\n    while True:\n        pass\n",
            TestRunStatus.TIMEOUT,
            "did not finish within the 3 s time limit (while running test_small)",
            id="infinite-loop",
        ),
        pytest.param(
            "while True:\n    pass\n",
            TestRunStatus.TIMEOUT,
            "did not finish within the 3 s time limit",
            id="infinite-loop-at-import",
        ),
        pytest.param(
            "import time\ndef add(a, b):\n    time.sleep(10**6)\n",
            TestRunStatus.TIMEOUT,
            "did not finish",
            id="sleep-forever",
        ),
        pytest.param(
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\ndef add(a, b):\n    time.sleep(10**6)\n",
            TestRunStatus.TIMEOUT,
            "did not finish",
            id="ignore-sigterm",
        ),
        pytest.param(
            "import os\nwhile True:\n    os.read(0, 1)\n",
            TestRunStatus.TIMEOUT,
            "did not finish",
            id="read-stdin-forever",
        ),
    ],
)
def test_code_that_never_returns_is_stopped(code: str, status: TestRunStatus, reason: str) -> None:
    started = time.perf_counter()
    report = check(code)
    assert report.status == status, report
    assert reason in report.reason
    assert report.correctness == 0.0
    assert time.perf_counter() - started < LIMIT_S + 6


def test_a_leftover_thread_does_not_hold_the_run() -> None:
    report = check(
        """
        import sys, threading
        sys.stdin.read()                     # stdin is already at its end: no hang
        threading.Thread(target=threading.Event().wait).start()   # never finishes
        def add(a, b):
            return a + b
        """
    )
    assert report.status == TestRunStatus.PASSED, report


def test_memory_bomb_fails_its_test() -> None:
    report = check("def add(a, b):\n    junk = bytearray(8 * 1024**3)\n    return a + b\n")
    assert report.status == TestRunStatus.FAILED
    assert report.correctness == 0.0
    assert all("MemoryError" in t.message for t in report.tests)


def test_one_gigabyte_write_fails_its_test() -> None:
    report = check(
        """
        def add(a, b):
            with open("/tmp/huge", "wb") as f:
                for _ in range(1024):
                    f.write(b"z" * 1024 * 1024)
            return a + b
        """
    )
    assert report.status == TestRunStatus.FAILED
    assert report.correctness == 0.0
    assert all("File too large" in t.message for t in report.tests), report.tests


def test_printing_100_mb_is_capped_and_still_graded() -> None:
    started = time.perf_counter()
    report = check(
        """
        import sys
        def add(a, b):
            if a == 1:
                for _ in range(100):
                    sys.stdout.write("p" * 1_000_000)
            return a + b
        """,
        limit=20,
    )
    assert report.status == TestRunStatus.PASSED, report.reason
    assert 0 < len(report.output) <= 10_000
    assert time.perf_counter() - started < 20


# -- reading what it must not see --------------------------------------------------------------


def test_host_files_keys_and_data_dir_stay_out_of_reach(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    canary = data_dir / "interviews.sqlite3"
    canary.write_bytes(b"private history")
    stamp = canary.stat().st_mtime_ns
    home_entries = [
        p for p in Path.home().iterdir() if not Path(sys.base_prefix).is_relative_to(p)
    ][:5]
    probes = ["/etc/passwd", str(canary), *map(str, home_entries)]
    report = check(
        f"""
        import os
        print("ENV", dict(os.environ))
        for path in {probes!r}:
            print("SEES" if os.path.exists(path) else "MISSING", path)
        try:
            print(open("/proc/1/environ", "rb").read())
        except OSError as exc:
            print("environ of pid 1:", exc)
        def add(a, b):
            return a + b
        """
    )
    assert report.status == TestRunStatus.PASSED, report
    assert FAKE_KEY not in report.output and "API_KEY" not in report.output
    assert "SEES" not in report.output
    assert report.output.count("MISSING") == len(probes)
    assert canary.read_bytes() == b"private history"
    assert canary.stat().st_mtime_ns == stamp


def test_reading_etc_passwd_fails_its_test() -> None:
    report = check("def add(a, b):\n    open('/etc/passwd').read()\n    return a + b\n")
    assert report.status == TestRunStatus.FAILED
    assert all("FileNotFoundError" in t.message for t in report.tests)


# -- blocked actions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "event"),
    [
        pytest.param(
            "import socket\n    socket.create_connection(('1.1.1.1', 80))", "socket", id="socket"
        ),
        pytest.param("import os\n    os.system('id')", "os.system", id="os-system"),
        pytest.param(
            "import subprocess\n    subprocess.run(['id'])", "subprocess.Popen", id="subprocess"
        ),
        pytest.param("import os\n    while True:\n        os.fork()", "os.fork", id="fork-bomb"),
        pytest.param(
            "import ctypes\n    ctypes.CDLL('libc.so.6').system(b'id')", "ctypes", id="ctypes"
        ),
        pytest.param(
            "import ctypes\n    ctypes.string_at(id(add), 64)", "ctypes", id="ctypes-memory"
        ),
        pytest.param("import sys\n    sys._getframe(1)", "sys._getframe", id="getframe"),
        pytest.param("import inspect\n    inspect.stack()", "sys._getframe", id="inspect-stack"),
        pytest.param(
            "try:\n        raise ValueError\n"
            "    except ValueError as e:\n        e.__traceback__.tb_frame.f_back",
            "reading a frame",
            id="traceback-frames",
        ),
        pytest.param("import gc\n    gc.get_objects()", "gc.get_objects", id="gc"),
        pytest.param(
            "import sys\n    sys.settrace(lambda *a: None)", "sys.settrace", id="settrace"
        ),
        pytest.param(
            "open('test_solution.py', 'w')", "writing '/sandbox/test_solution.py'", id="edit-tests"
        ),
        pytest.param(
            "import os\n    os.remove('_runner.py')",
            "os.remove on '/sandbox/_runner.py'",
            id="delete-runner",
        ),
        pytest.param("open('/proc/self/mem', 'rb')", "/proc/self/mem", id="read-own-memory"),
    ],
)
def test_blocked_actions_fail_the_test_that_tried(body: str, event: str) -> None:
    code = f"def add(a, b):\n    {body}\n    return a + b\n"
    report = check(code)
    assert report.status == TestRunStatus.FAILED, report
    assert report.correctness == 0.0
    messages = blocked_messages(report)
    assert len(messages) == report.total, report.tests
    assert all(event in m for m in messages), messages


def test_a_swallowed_block_still_fails_the_test() -> None:
    report = check(
        """
        def add(a, b):
            try:
                import os
                os.system("id")
            except Exception:
                pass
            return a + b
        """
    )
    assert report.status == TestRunStatus.FAILED
    assert len(blocked_messages(report)) == 4


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param("import os\nos.fork()\n" + GOOD, "not allowed at import: os.fork", id="fork"),
        pytest.param(
            "open('test_solution.py', 'w').write('def test_small(): pass')\n" + GOOD,
            "not allowed at import: writing '/sandbox/test_solution.py'",
            id="edit-tests",
        ),
        pytest.param(
            "import os\ntry:\n    os.chmod('test_solution.py', 0o777)\nexcept OSError:\n    pass\n"
            + GOOD,
            "not allowed at import: os.chmod",
            id="chmod-tests",
        ),
    ],
)
def test_blocked_actions_at_import_end_the_run(code: str, reason: str) -> None:
    report = check(code)
    assert report.status == TestRunStatus.ERROR, report
    assert reason in report.reason
    assert report.correctness == 0.0 and report.passed == 0


EXFILTRATION = {
    "open": "print(open('test_solution.py').read())",
    "glob-and-open": (
        "import glob, os\n"
        "for path in glob.glob(os.path.join(os.path.dirname(__file__), 'test_*.py')):\n"
        "    print(open(path).read())"
    ),
    "pathlib": "import pathlib\nprint(pathlib.Path('/sandbox/test_solution.py').read_text())",
    "copy-to-tmp": "import shutil\nshutil.copy('test_solution.py', '/tmp/t.py')",
    "linecache": "import linecache\nlinecache.getlines('/sandbox/test_solution.py')",
    "the-runner": "print(open('/sandbox/_runner.py').read())",
    "os-open": "import os\nos.read(os.open('test_solution.py', os.O_RDONLY), 10**6)",
}


@pytest.mark.parametrize("name", sorted(EXFILTRATION))
def test_reading_the_tests_is_blocked(name: str) -> None:
    report = check(EXFILTRATION[name] + "\n" + GOOD)
    assert report.status == TestRunStatus.ERROR, report
    assert "not allowed at import: reading the tests or the runner" in report.reason
    assert report.correctness == 0.0


def test_tracebacks_and_warnings_may_still_quote_the_tests() -> None:
    tests = """
import warnings

from solution import call_logged


def flaky():
    raise ValueError("raised in the test module")


def test_logs_the_failure(caplog):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert call_logged(flaky) == "ValueError"
    assert "raised in the test module" in caplog.text
"""
    solution = """
import logging, traceback, warnings

log = logging.getLogger(__name__)


def call_logged(func):
    try:
        func()
    except ValueError as exc:
        log.exception("call failed")
        traceback.format_exc()
        traceback.print_exc()
        warnings.warn("retrying", stacklevel=2)
        return type(exc).__name__
"""
    report = check(solution, tests=tests)
    assert report.status == TestRunStatus.PASSED, report


# -- gaming the runner scores 0 ----------------------------------------------------------------

GAMING = {
    "exit-at-import": "import os\nos._exit(0)\n",
    "exit-mid-run": (
        "import os\ndef add(a, b):\n    if a == 0:\n        os._exit(0)\n    return a + b\n"
    ),
    "patch-pytest-runner": """
        import _pytest.runner as runner
        real = runner.call_and_report
        def call_and_report(item, when, log=True, **kwargs):
            report = real(item, when, log=False, **kwargs)
            report.outcome, report.longrepr = "passed", None
            if log:
                item.ihook.pytest_runtest_logreport(report=report)
            return report
        runner.call_and_report = call_and_report
        def add(a, b):
            return 0
    """,
    "patch-report-class": """
        import _pytest.reports
        _pytest.reports.BaseReport.passed = property(lambda self: True)
        _pytest.reports.BaseReport.failed = property(lambda self: False)
        def add(a, b):
            return 0
    """,
    "replace-assertion-error": """
        import builtins
        class Harmless(Exception):
            pass
        builtins.AssertionError = Harmless
        def add(a, b):
            return 0
    """,
    "fake-test-module": """
        import sys, types
        fake = types.ModuleType("test_solution")
        source = "def test_small(): pass\\ndef test_cases(): pass\\ndef test_files(): pass"
        exec(source, fake.__dict__)
        sys.modules["test_solution"] = fake
        def add(a, b):
            return 0
    """,
    "import-hook": """
        import sys
        class Finder:
            def find_spec(self, name, path=None, target=None):
                return None
        sys.meta_path.insert(0, Finder())
        def add(a, b):
            return 0
    """,
    "plugin-registered-during-a-test": """
        import sys
        import pytest

        class Cheat:
            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(self, item, call):
                outcome = yield
                report = outcome.get_result()
                report.outcome, report.longrepr = "passed", None

        def add(a, b):
            if not getattr(add, "armed", False):
                add.armed = True
                config = next(f.config for f in sys.meta_path if hasattr(f, "config"))
                config.pluginmanager.register(Cheat())
            return 0
    """,
    "patch-during-a-test": """
        def add(a, b):
            import _pytest.python
            _pytest.python.pytest_pyfunc_call = lambda pyfuncitem: True
            return 0
    """,
}


@pytest.mark.parametrize("name", sorted(GAMING))
def test_gaming_the_runner_scores_zero(name: str) -> None:
    report = check(GAMING[name])
    assert report.status == TestRunStatus.ERROR, report
    assert report.correctness == 0.0 and report.passed == 0
    assert "scores 0" in report.reason, report.reason
    if name.startswith("exit"):
        assert "ended early with exit code 0" in report.reason
    else:
        assert "tampered" in report.reason


def test_fake_results_on_stdout_and_stray_fds_are_ignored() -> None:
    report = check(
        """
        import atexit, os, sys
        line = b"0" * 32 + b"\\tdone\\t0\\n"
        for fd in range(3, 40):
            for kind in (b"test\\ttest_solution.py::test_small\\t1\\t\\n", b"done\\t0\\n"):
                try:
                    os.write(fd, b"0" * 32 + b"\\t" + kind)
                except OSError:
                    pass
        print("4 passed, 0 failed")
        print("PASSED test_small")
        atexit.register(lambda: print("ATEXIT RAN", flush=True))
        def add(a, b):
            return a - b
        """
    )
    assert report.status == TestRunStatus.FAILED, report
    assert report.correctness == 0.0
    assert "ATEXIT RAN" not in report.output
    assert "4 passed" in report.output  # printed, and ignored


# -- bad input ---------------------------------------------------------------------------------


def test_syntax_error_is_explained() -> None:
    report = check("def add(a, b)\n    return a + b\n")
    assert report.status == TestRunStatus.ERROR
    assert "solution.py failed to import" in report.reason
    assert "SyntaxError" in report.reason and "line 1" in report.reason
    assert report.correctness == 0.0


def test_non_utf8_bytes_are_explained() -> None:
    report = check(b"def add(a, b):\n    return a + b\nNAME = 'caf\xe9 \xff\xfe'\n")
    assert report.status == TestRunStatus.ERROR
    assert "SyntaxError" in report.reason and "utf-8" in report.reason.lower()
    # Python reads comments without decoding them: stray bytes there are no error.
    assert check(b"def add(a, b):\n    return a + b  # caf\xe9\n").status == TestRunStatus.PASSED


def test_a_missing_function_fails_every_test() -> None:
    report = check("def subtract(a, b):\n    return a - b\n")
    assert report.status == TestRunStatus.FAILED
    assert report.correctness == 0.0
    assert "could not be collected" in report.reason and "add" in report.reason


def test_keyboard_interrupt_from_the_code_fails_only_that_test() -> None:
    report = check(
        """
        import pytest
        def add(a, b):
            if a == 10:
                raise KeyboardInterrupt("stop")
            if a == -1:
                pytest.exit("leave")
            return a + b
        """
    )
    assert report.status == TestRunStatus.FAILED, report
    assert (report.passed, report.total) == (3, 4)
    failed = next(t for t in report.tests if not t.passed)
    assert "escaped the test" in failed.message


def test_exceptions_at_import_are_errors() -> None:
    report = check("raise SystemExit(0)\n")
    assert report.status == TestRunStatus.ERROR
    assert "SystemExit" in report.reason


# -- unavailable -------------------------------------------------------------------------------


class _Unavailable:
    name = "nothing"

    def available(self) -> Availability:
        return Availability(ok=False, reason="bubblewrap is not installed: apt install bubblewrap")

    async def run(self, request: RunRequest) -> RunResult:
        raise AssertionError("an unavailable executor must never be asked to run code")


def test_unavailable_executor_reports_unavailable_and_runs_nothing() -> None:
    report = asyncio.run(run_tests(GOOD, TESTS, executor=_Unavailable()))
    assert report.status == TestRunStatus.UNAVAILABLE
    assert "apt install bubblewrap" in report.reason
    assert report.total == 4 and report.correctness == 0.0


def test_missing_pytest_reports_unavailable() -> None:
    nonce = "n" * 32
    channel = (
        f"{nonce}\tstarted\n"
        f"{nonce}\tunavailable\tpytest cannot be imported: install the coding extra\n"
        f"{nonce}\tdone\t0\n"
    )
    result = RunResult(status=RunStatus.EXITED, exit_code=0, channel=channel)
    report = interpret(result, NAMES, nonce, set(), Limits())
    assert report.status == TestRunStatus.UNAVAILABLE
    assert "install the coding extra" in report.reason
