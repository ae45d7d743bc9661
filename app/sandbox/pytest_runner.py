"""The trusted test runner: copied read-only into the sandbox and run there as a script.

    python _runner.py test_solution.py      (stdin: the run's JSON settings, with its nonce)

It imports the candidate's ``solution`` module, runs the test module with pytest in the same
process, and reports every outcome as a line on the result channel (``$RESULT_FD``):
``<nonce> TAB <kind> TAB <fields...>``. The parent (:mod:`app.sandbox.testrun`) trusts
only lines that carry the nonce, and a run counts only if it ends with a ``done`` line.
The threat model and what this runner can and cannot stop are described there.

Order matters here, and each step is done before the candidate's code can run:

1. read the settings (nonce, canary test names) from stdin, take the channel's fd out of the
   environment, and keep the references this runner writes with (``os.write``, ``os._exit``);
2. import pytest and every built-in pytest plugin, then take a snapshot of pytest's and
   pluggy's modules, the builtins, ``sys.meta_path`` and ``sys.path_hooks``;
3. install the audit hook (:func:`_make_guard`), which is armed from then on;
4. import ``solution``; any exception, blocked event or change to the snapshot here ends
   the run as an import error;
5. run pytest with a plugin that streams each test's outcome and inserts the canaries;
6. compare the snapshot again, write ``done`` and leave with ``os._exit`` at once, so no
   ``atexit`` handler, finalizer or leftover thread of the candidate's runs after it.

Only the standard library and pytest are used; nothing secret is kept in module globals.
"""

from __future__ import annotations

import sys
from typing import Any

SOLUTION_MODULE = "solution"
TRUSTED_MODULES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging")
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
PROCESS_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "pty.spawn",
        "signal.pthread_kill",
        "subprocess.Popen",
    }
)
INTROSPECTION_EVENTS = frozenset(
    {
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys._current_frames",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
    }
)
# Events that change the filesystem: the positions of their path arguments and, where it
# has one, of the directory fd those paths are relative to.
PATH_EVENTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "os.remove": ((0,), (1,)),
    "os.rmdir": ((0,), (1,)),
    "os.mkdir": ((0,), (2,)),
    "os.chmod": ((0,), (2,)),
    "os.chown": ((0,), (3,)),
    "os.rename": ((0, 1), (2, 3)),
    "os.link": ((1,), (3,)),
    "os.symlink": ((1,), (2,)),
    "os.utime": ((0,), (3,)),
    "os.truncate": ((0,), ()),
    "os.chflags": ((0,), ()),
    "os.lchflags": ((0,), ()),
    "os.setxattr": ((0,), ()),
    "os.removexattr": ((0,), ()),
    "shutil.rmtree": ((0,), (1,)),
    "shutil.copyfile": ((1,), ()),
    "shutil.copymode": ((1,), ()),
    "shutil.copystat": ((1,), ()),
    "shutil.copytree": ((1,), ()),
    "shutil.move": ((0, 1), ()),
    "shutil.chown": ((0,), ()),
}
WRITABLE_ROOT = "/tmp"


class BlockedError(PermissionError):
    """Raised by the audit hook for something a solution may not do here."""


def _make_guard(
    trusted_roots: tuple[str, ...],
    launderers: frozenset[object],
    readers: frozenset[object],
    secrets: frozenset[str],
    violations: list[str],
) -> object:
    """The audit hook. It blocks, when the candidate's code asks for them:

    * process creation and signals (subprocess, os.system, exec, fork, posix_spawn, kill);
    * ctypes (loading a library, looking up or calling a symbol, reading raw memory), and
      every socket operation except on local (AF_UNIX) sockets, which asyncio's event loop
      needs for itself;
    * gc.get_objects / get_referrers / get_referents, sys._current_frames, sys.settrace,
      sys.setprofile and new audit hooks: ways to reach the runner's objects and frames;
    * writing, creating, removing or renaming any file outside /tmp, and reading
      /proc/*/mem;
    * reading the test module or this runner (``secrets``, by file name), directly or
      through a stdlib helper that reads files for its caller (``readers``: pathlib,
      shutil, linecache, inspect.getsource...); the standard library may still read them
      for itself (a traceback or a warning quoting a test's line);
    * sys._getframe and frame attributes of tracebacks, generators and coroutines
      (``tb_frame``, ``gi_frame``, ``cr_frame``) when the candidate's code asks directly,
      or through a stdlib helper whose job is to hand out frames (inspect.currentframe,
      inspect.stack, traceback.extract_stack...); the standard library may still use
      frames for itself (logging's caller lookup, namedtuple, typing).

    "The candidate's code" is any frame whose file is not under the standard library,
    site-packages, this runner or the test module: solution.py, files written to /tmp,
    and code compiled from strings. Each blocked event is recorded in ``violations``
    (the run fails the test in progress, or the whole run at import) and raised as
    :class:`BlockedError`.
    """
    import os
    import threading
    from types import FrameType

    get_ident = threading.get_ident
    getframe = sys._getframe
    abspath = os.path.abspath
    basename = os.path.basename
    readlink = os.readlink
    import socket

    unix = socket.AF_UNIX  # socketpair() for asyncio's self-pipe; no network in the sandbox
    fsdecode = os.fsdecode
    busy: set[int] = set()
    verdicts: dict[object, bool] = {}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    watched_prefixes = ("ctypes.", "socket.")
    watched = PROCESS_EVENTS | INTROSPECTION_EVENTS | set(PATH_EVENTS) | {"open", "sys._getframe"}
    watched |= {"object.__getattr__", "object.__setattr__"}

    def untrusted(code: object) -> bool:
        verdict = verdicts.get(code)
        if verdict is None:
            name = getattr(code, "co_filename", "")
            verdict = not (
                name.startswith("<frozen ")
                or any(name == r or name.startswith(r + "/") for r in trusted_roots)
            )
            verdicts[code] = verdict
        return verdict

    # Frames, innermost first: 0 the function below, 1 judge, 2 hook, 3 what raised the event.
    def candidate_on_stack() -> bool:
        frame: FrameType | None = getframe(3)
        while frame is not None:
            if untrusted(frame.f_code):
                return True
            frame = frame.f_back
        return False

    def candidate_asks_for_frames() -> bool:
        frame: FrameType | None = getframe(3)
        while frame is not None and frame.f_code in launderers:
            frame = frame.f_back
        return frame is not None and untrusted(frame.f_code)

    def candidate_reads() -> bool:
        frame: FrameType | None = getframe(3)
        while frame is not None and frame.f_code in readers:
            frame = frame.f_back
        return frame is not None and untrusted(frame.f_code)

    def outside_tmp(path: object, dir_fd: object = None) -> bool:
        if isinstance(path, int) or path is None:
            return False
        try:
            text = fsdecode(path)  # type: ignore[arg-type]
            if isinstance(dir_fd, int) and not text.startswith("/"):
                text = os.path.join(readlink(f"/proc/self/fd/{dir_fd}"), text)
            text = abspath(text)
        except (TypeError, ValueError, OSError):
            return True
        return not (text == WRITABLE_ROOT or text.startswith(WRITABLE_ROOT + "/"))

    def judge(event: str, args: tuple[object, ...]) -> str | None:
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            if isinstance(path, int):
                return None
            if isinstance(mode, str):
                writes = any(c in mode for c in "wax+")
            else:
                writes = isinstance(flags, int) and bool(flags & write_flags)
            if writes:
                if outside_tmp(path) and candidate_on_stack():
                    return f"writing {abspath(fsdecode(path))!r} (only /tmp is writable)"  # type: ignore[arg-type]
                return None
            text = fsdecode(path) if isinstance(path, str | bytes) else ""
            if basename(text) in secrets and candidate_reads():
                return f"reading the tests or the runner ({abspath(text)!r})"
            memory = "proc" in text and abspath(text).endswith(("/mem", "/pagemap"))
            if memory and candidate_on_stack():
                return f"reading {text!r}"
            return None
        if event == "object.__getattr__":
            if args[1] in FRAME_ATTRIBUTES and candidate_asks_for_frames():
                return f"reading a frame ({type(args[0]).__name__}.{args[1]})"
            return None
        if event == "object.__setattr__":
            target, name = args[0], args[1]
            if (
                name == "__code__"
                and not untrusted(getattr(target, "__code__", None))
                and candidate_on_stack()
            ):
                return f"replacing the code of {getattr(target, '__qualname__', target)!r}"
            return None
        if event == "sys._getframe":
            if candidate_asks_for_frames():
                return "sys._getframe (reading the call stack)"
            return None
        if event in PATH_EVENTS:
            positions, fd_positions = PATH_EVENTS[event]
            dir_fds = [args[i] if i < len(args) else None for i in fd_positions]
            for index, position in enumerate(positions):
                path = args[position] if position < len(args) else None
                dir_fd = dir_fds[min(index, len(dir_fds) - 1)] if dir_fds else None
                if outside_tmp(path, dir_fd) and candidate_on_stack():
                    return f"{event} on {abspath(fsdecode(path))!r} (only /tmp is writable)"  # type: ignore[arg-type]
            return None
        if event.startswith("socket."):
            if event == "socket.__new__":
                local = args[1] == unix
            else:  # connect, bind, sendto...: fine on a local socket; name lookups are not
                local = getattr(args[0], "family", None) == unix
            if local or not candidate_on_stack():
                return None
            return event
        if candidate_on_stack():  # process, ctypes and introspection events
            return event
        return None

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event not in watched and not event.startswith(watched_prefixes):
            return
        me = get_ident()
        if me in busy:
            return
        busy.add(me)
        try:
            verdict = judge(event, args)
        finally:
            busy.discard(me)
        if verdict is not None:
            violations.append(verdict)
            raise BlockedError(f"blocked in the sandbox: {verdict}")

    return hook


class _Names:
    """A class's own attribute names; a new one matters only if it overrides a base's.

    (pytest marks classes with ``_pytest_*`` flags of its own; those do not count.)
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.names = frozenset(vars(cls))

    def same_as(self, other: object) -> bool:
        if not isinstance(other, _Names) or other.cls is not self.cls:
            return False
        added = {n for n in other.names - self.names if not n.startswith("_pytest")}
        bases = self.cls.__mro__[1:]
        return not any(name in vars(base) for name in added for base in bases)


def _snapshot() -> dict[tuple[str, ...], object]:
    """Identities of everything a solution could patch to make pytest report success."""
    import builtins

    state: dict[tuple[str, ...], object] = {}
    for key, value in vars(builtins).items():
        state[("builtins", key)] = value
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(TRUSTED_MODULES):
            continue
        state[("sys.modules", name)] = module
        for key, value in list(vars(module).items()):
            state[(name, key)] = value
            if isinstance(value, type) and value.__module__ == name:
                for attr, member in list(vars(value).items()):
                    state[(name, key, attr)] = member
                state[(name, key, "")] = _Names(value)
    state[("sys", "meta_path")] = tuple(sys.meta_path)
    state[("sys", "path_hooks")] = tuple(sys.path_hooks)
    return state


def _changes(before: dict[tuple[str, ...], object]) -> list[str]:
    """What differs from ``before``: values compared by identity, tuples item by item."""

    def same(old: object, new: object) -> bool:
        if isinstance(old, _Names):
            return old.same_as(new)
        if type(old) is tuple and type(new) is tuple:
            return len(old) == len(new) and all(
                a is b or (type(a) is str and a == b) for a, b in zip(old, new, strict=True)
            )
        return old is new

    after = _snapshot()
    missing = object()
    return [
        ".".join(k for k in key if k)
        for key, value in before.items()
        if not same(value, after.get(key, missing))
    ]


def main() -> None:
    import contextlib
    import importlib
    import json
    import os
    import signal
    import sysconfig
    import traceback

    settings = json.loads(sys.stdin.buffer.read() or b"{}")
    nonce: str = settings["nonce"]
    canaries: list[str] = list(settings.get("canaries", []))
    test_file: str = sys.argv[1]
    fd = int(os.environ.pop("RESULT_FD"))
    write, leave, exact = os.write, os._exit, str
    streams = (sys.stdout, sys.stderr)

    def emit(kind: str, *fields: object) -> None:
        parts = [nonce, kind]
        for item in fields:
            text = "".join((exact(item),))  # an exact str, whatever the object claims to be
            parts.append(text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n"))
        data = ("\t".join(parts) + "\n").encode("utf-8", "replace")
        while data:
            data = data[write(fd, data) :]

    def finish(code: int) -> None:
        for stream in streams:  # what was printed before this point still reaches the output
            with contextlib.suppress(BaseException):  # a closed stream loses nothing of ours
                stream.flush()
        emit("done", code)
        leave(0)

    emit("started")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, not the process
    os.environ["PYTHONBREAKPOINT"] = "0"
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        import pytest
        from _pytest.config import builtin_plugins, default_plugins
    except ImportError as exc:
        emit("unavailable", f"pytest cannot be imported ({exc}): install the coding extra")
        finish(0)
        return
    for plugin_name in sorted(set(default_plugins) | builtin_plugins):
        if not plugin_name.startswith("pytester"):
            importlib.import_module(f"_pytest.{plugin_name}")
    import ctypes  # noqa: F401  (its import loads libpython; later imports must not)

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    here = os.path.abspath(__file__)
    tests_path = os.path.abspath(test_file)
    trusted = (*sorted(roots), here, tests_path)
    import asyncio.base_tasks
    import inspect
    import logging

    launderers = frozenset(
        f.__code__
        for f in (
            inspect.currentframe,
            inspect.stack,
            inspect.trace,
            inspect.getinnerframes,
            inspect.getouterframes,
            traceback.walk_stack,
            traceback.walk_tb,
            traceback.extract_stack,
            traceback.format_stack,
            traceback.print_stack,
            logging.currentframe,
            asyncio.base_tasks._task_get_stack,
        )
    )
    import linecache
    import pathlib
    import shutil
    import tokenize

    readers = frozenset(
        f.__code__
        for f in (
            pathlib.Path.read_text,
            pathlib.Path.read_bytes,
            pathlib.Path.open,
            shutil.copyfile,
            shutil.copy,
            shutil.copy2,
            shutil.copytree,
            linecache.getline,
            linecache.getlines,
            linecache.updatecache,
            inspect.getsource,
            inspect.getsourcelines,
            inspect.findsource,
            tokenize.open,
        )
    )
    secrets = frozenset({os.path.basename(tests_path), os.path.basename(here)})
    violations: list[str] = []
    before = _snapshot()
    guard = _make_guard(trusted, launderers, readers, secrets, violations)
    sys.addaudithook(guard)  # type: ignore[arg-type]

    try:
        importlib.import_module(SOLUTION_MODULE)
    except BaseException as exc:
        if violations:
            emit("violation", "import", violations[0])
            finish(0)
            return
        lines = traceback.format_exception_only(type(exc), exc)
        where = [
            f"line {frame.lineno}"
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename.endswith(f"{SOLUTION_MODULE}.py")
        ]
        detail = "".join(lines).strip()
        emit("import-error", detail + (f" ({where[-1]})" if where else ""))
        finish(0)
        return
    if violations:
        emit("violation", "import", violations[0])
        finish(0)
        return
    module_name = os.path.splitext(os.path.basename(test_file))[0]
    changed = _changes(before)
    if module_name in sys.modules:
        changed.append(f"sys.modules[{module_name!r}]")
    if changed:
        emit("tampered", "at import: changed " + ", ".join(changed[:5]))
        finish(0)
        return
    emit("imported")

    state: dict[str, str | None] = {"test": None}
    seen: dict[str, int] = {}
    outcomes: dict[str, list[str]] = {}
    plugins: dict[str, Any] = {}

    def canary_failing() -> None:
        raise AssertionError("this test must fail")

    def canary_erroring() -> None:
        raise LookupError("this test must fail")

    def message_of(report: pytest.TestReport | pytest.CollectReport) -> str:
        longrepr = report.longrepr
        crash = getattr(longrepr, "reprcrash", None)
        if crash is not None:
            text = str(crash.message)
        elif isinstance(longrepr, tuple) and len(longrepr) == 3:
            text = f"skipped: {longrepr[2]}"
        else:
            text = str(longrepr).strip().splitlines()[-1] if longrepr else ""
        return text[:2000]

    class EscapedInterrupt(Exception):  # noqa: N818 (named for what the test report says)
        """A KeyboardInterrupt or pytest.exit from the code under test, as a failure."""

    class Reporter:
        @pytest.hookimpl(wrapper=True)
        def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> object:
            # pytest ends the whole session on KeyboardInterrupt (or pytest.exit) in a test;
            # from the code under test it is that test's failure, and the session goes on.
            try:
                return (yield)
            except (KeyboardInterrupt, pytest.exit.Exception) as exc:
                raise EscapedInterrupt(f"{type(exc).__name__} escaped the test: {exc}") from exc

        @pytest.hookimpl(trylast=True)
        def pytest_configure(self, config: pytest.Config) -> None:
            # Python's own traceback format: pytest's re-parses source files with ast, which
            # CPython 3.11 can fail (SystemError) when garbage collection runs a finalizer
            # that formats a traceback mid-parse; the failure message is the same either way.
            config.option.tbstyle = "native"

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
            if not items:
                return
            import random

            chooser = random.Random(nonce)
            parent = items[0].parent
            made = [
                pytest.Function.from_parent(parent, name=name, callobj=body)
                for name, body in zip(canaries, (canary_failing, canary_erroring), strict=False)
            ]
            if made:  # one canary runs last, so a cheat installed during any test is caught
                items.append(made.pop())
            for item in made:
                items.insert(chooser.randint(0, len(items) - 1), item)

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            manager = session.config.pluginmanager
            plugins["manager"] = manager
            plugins["baseline"] = frozenset(map(id, manager.get_plugins()))
            emit("collected", *(item.nodeid for item in session.items))

        def pytest_collectreport(self, report: pytest.CollectReport) -> None:
            if report.failed:
                emit("collect-error", message_of(report))

        def pytest_runtest_logstart(self, nodeid: str) -> None:
            state["test"] = nodeid
            seen[nodeid] = len(violations)
            outcomes[nodeid] = []

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            nodeid = report.nodeid
            failures = outcomes.setdefault(nodeid, [])
            outcome = report.outcome
            if not (type(outcome) is str and outcome == "passed"):
                phase = "" if report.when == "call" else f"error in {report.when}: "
                failures.append(phase + message_of(report))
            manager = plugins.get("manager")
            if manager is not None and frozenset(map(id, manager.get_plugins())) != plugins.get(
                "baseline"
            ):
                plugins.pop("manager")
                emit("tampered", "a pytest plugin was registered or removed during the tests")
            if report.when == "teardown":
                blocked = violations[seen.get(nodeid, len(violations)) :]
                if blocked:
                    failures.insert(0, f"blocked in the sandbox: {blocked[0]}")
                passed = not failures
                emit(
                    "test", nodeid, "1" if passed is True else "0", failures[0] if failures else ""
                )
                state["test"] = None

    args = [
        tests_path,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "-p",
        "no:faulthandler",
        "-p",
        "no:debugging",
        "-p",
        "no:pastebin",
        "--capture=no",
        "--basetemp=/tmp/pytest",
        "--rootdir",
        os.path.dirname(tests_path),
        "-c",
        "/dev/null",
    ]
    try:
        code = int(pytest.main(args, plugins=[Reporter()]))
    except BaseException as exc:
        emit("collect-error", "".join(traceback.format_exception_only(type(exc), exc)).strip())
        code = 3
    changed = _changes(before)
    if changed:
        emit("tampered", "changed " + ", ".join(changed[:5]))
    if sys.gettrace() is not None or sys.getprofile() is not None:
        emit("tampered", "a trace or profile function was left installed")
    finish(code)


if __name__ == "__main__":
    main()
