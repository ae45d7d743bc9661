"""Run code under bubblewrap (``bwrap``): Linux namespaces, rlimits, a wall-clock kill.

What the sandboxed process sees and may do:

* **Namespaces**: new user, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``
  plus an explicit ``--unshare-user``). The network namespace has only a loopback device, so
  every connection fails, including to the host's own 127.0.0.1. ``--die-with-parent``
  ties the sandbox's life to ours; ``--new-session`` detaches it from our terminal.
* **Filesystem**: a fresh root holding only ``/usr`` (read-only), the ``/bin``, ``/lib``...
  symlinks, the interpreter's prefix and the virtualenv's ``pyvenv.cfg`` and
  ``site-packages`` (read-only, at their own paths so the interpreter finds them), a new
  ``/proc`` for its own PID namespace, a minimal ``/dev``, a private ``/tmp`` (a tmpfs of
  ``TMP_FILES * file_mb``) and the working directory ``/sandbox`` (read-only; it holds the request's
  files, of which only those not marked read-only are writable). ``/etc`` is not there at
  all, nor the project checkout, ``$HOME``, the data directory or anything that holds keys.
* **Environment**: cleared; only PATH, HOME=/tmp, LANG, TMPDIR, PYTHONDONTWRITEBYTECODE,
  PYTHONHASHSEED=0 and single-threaded BLAS settings are set. bwrap itself is started with
  that same small environment, since its PID 1 inside the sandbox keeps the environment it
  was started with and ``/proc/1/environ`` is readable there.
* **Priority**: the command runs under ``nice -n 10``, so the app's own work comes first.
* **Limits**: ``prlimit`` sets RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE,
  RLIMIT_NPROC and RLIMIT_CORE=0 inside the namespaces, just before the command is executed.
  They are set inside, not on bwrap, because RLIMIT_NPROC counts the user's processes: set
  outside it would count every process the user runs on the host; inside a new user
  namespace it counts only the sandbox's own. The wall clock is ours: at ``wall_s`` the
  whole process group is killed with SIGKILL, and the kernel then kills everything left in
  the PID namespace. Output is read with a cap; the rest is drained and dropped.
* **Root**: the kernel never applies RLIMIT_NPROC to uid 0, so when the app runs as root
  (containers, CI) the command runs as ``nobody`` instead: bwrap is started with
  ``--userns-block-fd``, we write a uid/gid map with both 0 and 65534 into its new user
  namespace, and ``setpriv`` switches to 65534 and drops every capability before exec.
  bwrap still does its mounts as root of the namespace, so an interpreter installed under
  ``/root`` (pyenv) can be bound.

The first :meth:`BubblewrapExecutor.available` call runs a tiny probe (the sandbox's Python
prints its version) and caches the answer with a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import site
import sys
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar, TypeVar

from app.sandbox.base import (
    TMP_FILES,
    Availability,
    Limits,
    RunRequest,
    RunResult,
    RunStatus,
    unavailable,
)

WORK_DIR = "/sandbox"
NOBODY = 65534  # the uid and gid a root-started sandbox runs its command as
DRAIN_GRACE_S = 2.0  # after the process is gone, how long its pipes may take to close
PROBE_TIMEOUT_S = 20.0
NICE = 10  # sandboxed code yields the CPU to the app, so the UI stays responsive under load

INSTALL_HINT = "bubblewrap is not installed: apt install bubblewrap (or `make system-deps`)"
USERNS_HINT = (
    "this kernel refuses unprivileged user namespaces, so bubblewrap cannot build a sandbox"
    " (on Ubuntu 23.10+ AppArmor restricts them: allow bwrap with an AppArmor profile or set"
    " the sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
)

_SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_SIGNAL_REASONS = {
    signal.SIGXCPU: "it used up its CPU time limit ({cpu_s} s)",
    signal.SIGXFSZ: "it tried to write a file larger than the {file_mb} MB limit",
    signal.SIGKILL: "it was killed (SIGKILL), most likely for using too much memory",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted (SIGABRT)",
    signal.SIGBUS: "it crashed (bus error)",
}

T = TypeVar("T")


def _under(path: str, roots: Iterable[str]) -> bool:
    pure = PurePosixPath(path)
    return any(pure == PurePosixPath(r) or PurePosixPath(r) in pure.parents for r in roots)


@dataclass(frozen=True)
class PythonLayout:
    """Where this interpreter lives, and what the sandbox must bind for it to run there."""

    interpreter: str  # the real binary
    python: str  # the path run inside the sandbox (a venv's bin/python, or the binary)
    ro_dirs: tuple[str, ...] = ()
    ro_files: tuple[str, ...] = ()
    symlinks: tuple[tuple[str, str], ...] = ()  # (target, link path)

    @classmethod
    def current(cls) -> PythonLayout:
        interpreter = os.path.realpath(sys.executable)
        visible = ["/usr"]
        dirs: list[str] = []
        for prefix in dict.fromkeys(
            os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)
        ):
            if not _under(prefix, visible + dirs):
                dirs.append(prefix)
        if not _under(interpreter, visible + dirs):
            dirs.append(os.path.dirname(interpreter))
        files: list[str] = []
        links: list[tuple[str, str]] = []
        python = interpreter
        if sys.prefix != sys.base_prefix:  # a virtualenv: its config and packages only
            venv = os.path.abspath(sys.prefix)
            python = os.path.join(venv, "bin", "python")
            if not _under(venv, visible + dirs):
                files.append(os.path.join(venv, "pyvenv.cfg"))
                for path in site.getsitepackages([venv]):
                    if os.path.isdir(path) and path not in dirs:
                        dirs.append(path)
                links.append((interpreter, python))
        return cls(interpreter, python, tuple(dirs), tuple(files), tuple(links))


@dataclass
class _Collector(asyncio.Protocol):
    """Reads one pipe to its end, keeping the first ``cap`` bytes."""

    cap: int
    done: asyncio.Future[None]
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0

    def data_received(self, data: bytes) -> None:
        room = self.cap - self.kept
        if room > 0:
            self.chunks.append(data[:room])
            self.kept += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def _run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="sandbox-probe")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


class BubblewrapExecutor:
    """The one-machine sandbox: bubblewrap namespaces plus rlimits plus a wall-clock kill."""

    name: ClassVar[str] = "bubblewrap"

    def __init__(self, bwrap: str | None = None, layout: PythonLayout | None = None) -> None:
        self._bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self._layout = layout or PythonLayout.current()
        self._prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
        self._setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
        self._nice = shutil.which("nice", path="/usr/bin:/bin")
        self._as_root = os.geteuid() == 0
        self._availability: Availability | None = None
        self._lock = threading.Lock()

    # -- availability -------------------------------------------------------------------

    def available(self) -> Availability:
        with self._lock:
            if self._availability is None:
                self._availability = self._probe()
            return self._availability

    def _probe(self) -> Availability:
        if not sys.platform.startswith("linux"):
            return Availability(ok=False, reason=f"code runs need Linux; this is {sys.platform}")
        if not self._bwrap or not os.access(self._bwrap, os.X_OK):
            return Availability(ok=False, reason=INSTALL_HINT)
        if not self._prlimit:
            return Availability(
                ok=False,
                reason="prlimit (util-linux) is missing from /usr/bin: apt install util-linux",
            )
        if self._as_root and not self._setpriv:
            return Availability(
                ok=False,
                reason="running as root needs setpriv (util-linux) to drop to nobody: "
                "apt install util-linux",
            )
        probe = RunRequest(
            argv=["python", "-c", "import sys; sys.stdout.write(sys.version)"],
            limits=Limits(wall_s=PROBE_TIMEOUT_S),
        )
        try:
            result = _run_blocking(self._execute(probe))
        except OSError as exc:
            return Availability(ok=False, reason=f"bubblewrap could not be started: {exc}")
        if result.status == RunStatus.ERROR:
            message = result.stderr.strip() or result.reason
            lowered = message.lower()
            if any(
                s in lowered
                for s in ("namespace", "uid map", "operation not permitted", "permission denied")
            ):
                return Availability(ok=False, reason=f"{USERNS_HINT}: {message}")
            return Availability(ok=False, reason=f"bubblewrap could not start a sandbox: {message}")
        if not result.ok or result.stdout != sys.version:
            detail = (result.stderr.strip() or result.reason or result.stdout)[-500:]
            return Availability(
                ok=False,
                reason=f"the sandbox could not run this Python ({self._layout.python}): {detail}",
            )
        return Availability(ok=True)

    # -- running ------------------------------------------------------------------------

    async def run(self, request: RunRequest) -> RunResult:
        availability = self._availability
        if availability is None:
            availability = await asyncio.to_thread(self.available)
        if not availability.ok:
            return unavailable(availability.reason)
        return await self._execute(request)

    def command(self, request: RunRequest, file_fds: dict[str, int], status_fd: int) -> list[str]:
        """The bwrap command line for ``request`` (file contents come from ``file_fds``)."""
        layout = self._layout
        limits = request.limits
        args = [self._bwrap or "bwrap", "--unshare-all", "--unshare-user"]
        if not self._as_root:
            args.append("--disable-userns")  # (needs bwrap to write its own uid map)
        args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = f"/{name}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        size = str(limits.file_mb * TMP_FILES * 1024 * 1024)
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]  # POSIX semaphores
        args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
        args += ["--perms", "0755", "--tmpfs", WORK_DIR]
        for name, fd in file_fds.items():
            if name in request.readonly:
                args += ["--perms", "0444", "--ro-bind-data", str(fd), f"{WORK_DIR}/{name}"]
            else:
                args += ["--perms", "0666", "--bind-data", str(fd), f"{WORK_DIR}/{name}"]
        # The interpreter's own files, after /tmp so that a virtualenv under /tmp stays
        # visible; the directories leading to them are made traversable (0755), since a
        # sandbox started as root runs its command as nobody.
        dests = [*layout.ro_dirs, *layout.ro_files, *(link for _, link in layout.symlinks)]
        made: set[str] = {"/", "/tmp", "/dev", "/proc", WORK_DIR}
        for dest in sorted(dests, key=len):
            for parent in reversed(PurePosixPath(dest).parents):
                name = str(parent)
                if name in made or _under(name, ["/usr", *layout.ro_dirs]):
                    continue
                made.add(name)
                args += ["--perms", "0755", "--dir", name]
        for path in sorted(layout.ro_dirs, key=len):
            args += ["--ro-bind", path, path]
        for path in layout.ro_files:
            args += ["--ro-bind", path, path]
        for target, link in layout.symlinks:
            args += ["--symlink", target, link]
        args += ["--remount-ro", WORK_DIR, "--chdir", WORK_DIR, "--clearenv"]
        for key, value in _SANDBOX_ENV.items():
            args += ["--setenv", key, value]
        args += ["--json-status-fd", str(status_fd)]
        return args

    def _payload(self, request: RunRequest) -> list[str]:
        limits = request.limits
        argv = list(request.argv)
        if argv[0] == "python":
            argv[0] = self._layout.python
        prefix: list[str] = []
        if self._as_root:
            assert self._setpriv is not None
            prefix += [
                self._setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        if self._nice:
            prefix += [self._nice, "-n", str(NICE)]
        memory = limits.memory_mb * 1024 * 1024
        files = limits.file_mb * 1024 * 1024
        prefix += [
            self._prlimit or "prlimit",
            f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            f"--as={memory}",
            f"--fsize={files}",
            f"--nofile={limits.nofile}",
            f"--nproc={limits.nproc}",
            "--core=0",
            "--",
        ]
        return prefix + argv

    async def _execute(self, request: RunRequest) -> RunResult:
        loop = asyncio.get_running_loop()
        limits = request.limits
        to_close: list[int] = []
        readers: dict[str, tuple[asyncio.Transport, _Collector]] = {}

        def pipe() -> tuple[int, int]:
            r, w = os.pipe()
            to_close.extend((r, w))
            return r, w

        async def collect(name: str, fd: int, cap: int) -> None:
            collector = _Collector(cap, loop.create_future())
            transport, _ = await loop.connect_read_pipe(
                lambda: collector, os.fdopen(os.dup(fd), "rb", buffering=0)
            )
            readers[name] = (transport, collector)  # type: ignore[assignment]

        started = time.perf_counter()
        try:
            file_fds: dict[str, int] = {}
            for name, content in request.files.items():
                fd = os.memfd_create(f"sandbox-{name}", 0)
                to_close.append(fd)
                data = content.encode("utf-8") if isinstance(content, str) else content
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.lseek(fd, 0, os.SEEK_SET)
                file_fds[name] = fd
            out_r, out_w = pipe()
            err_r, err_w = pipe()
            status_r, status_w = pipe()
            pass_fds = [*file_fds.values(), status_w]
            command = self.command(request, file_fds, status_w)
            info_r = block_w = -1
            if self._as_root:
                info_r, info_w = pipe()
                block_r, block_w = pipe()
                command += ["--userns-block-fd", str(block_r), "--info-fd", str(info_w)]
                command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
                pass_fds += [info_w, block_r]
            env = dict(_SANDBOX_ENV)
            channel_r = -1
            if request.result_channel:
                channel_r, channel_w = pipe()
                pass_fds.append(channel_w)
                command += ["--setenv", "RESULT_FD", str(channel_w)]
            command += ["--", *self._payload(request)]

            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
                pass_fds=pass_fds,
                env=env,
                start_new_session=True,
                cwd="/",
            )
            # Our copies of the write ends must go, or the pipes never reach end-of-file.
            for fd in [out_w, err_w, status_w, *pass_fds]:
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(ValueError):
                    to_close.remove(fd)
            await collect("stdout", out_r, limits.output_bytes)
            await collect("stderr", err_r, limits.output_bytes)
            await collect("status", status_r, 64 * 1024)
            if channel_r != -1:
                await collect("channel", channel_r, limits.output_bytes)
            if self._as_root:
                await collect("info", info_r, 64 * 1024)
                setup_ok = await self._map_ids(readers["info"][1], block_w, process)
                with contextlib.suppress(OSError):
                    os.close(block_w)
                with contextlib.suppress(ValueError):
                    to_close.remove(block_w)
                if not setup_ok:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            stdin_task = asyncio.create_task(self._feed(process, request.stdin))
            timed_out = False
            remaining = limits.wall_s - (time.perf_counter() - started)
            try:
                await asyncio.wait_for(process.wait(), timeout=max(remaining, 0.01))
            except TimeoutError:
                timed_out = True
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            stdin_task.cancel()
            with contextlib.suppress(BaseException):
                await stdin_task
            waits = [collector.done for _, collector in readers.values()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout=DRAIN_GRACE_S)
            duration = time.perf_counter() - started
            return self._result(request, readers, timed_out, duration)
        except asyncio.CancelledError:
            raise
        finally:
            for transport, _ in readers.values():
                transport.close()
            for fd in to_close:
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def _map_ids(
        self, info: _Collector, block_w: int, process: asyncio.subprocess.Process
    ) -> bool:
        """Root only: map ids 0 and 65534 into bwrap's new user namespace, then let it go on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(info.done), timeout=PROBE_TIMEOUT_S)
        try:
            child = int(json.loads(info.value().decode())["child-pid"])
        except (ValueError, KeyError, TypeError):
            return False  # bwrap failed before creating the namespace; its stderr says why
        mapping = f"0 0 1\n{NOBODY} {NOBODY} 1\n"
        try:
            for kind in ("uid_map", "gid_map"):
                with open(f"/proc/{child}/{kind}", "w") as handle:
                    handle.write(mapping)
            os.write(block_w, b"1")
        except OSError:
            return process.returncode is not None
        return True

    @staticmethod
    async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError, OSError):
            if data:
                process.stdin.write(data)
                await process.stdin.drain()
        process.stdin.close()

    @staticmethod
    def _result(
        request: RunRequest,
        readers: dict[str, tuple[asyncio.Transport, _Collector]],
        timed_out: bool,
        duration: float,
    ) -> RunResult:
        def text(name: str) -> str:
            return readers[name][1].value().decode("utf-8", "replace") if name in readers else ""

        truncated = any(
            readers[n][1].dropped for n in ("stdout", "stderr", "channel") if n in readers
        )
        started = False
        exit_code: int | None = None
        for line in text("status").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                started = started or "child-pid" in record
                if "exit-code" in record:
                    exit_code = int(record["exit-code"])
        limits = request.limits
        common: dict[str, Any] = {
            "stdout": text("stdout"),
            "stderr": text("stderr"),
            "channel": text("channel"),
            "truncated": truncated,
            "duration_s": round(duration, 4),
        }
        if timed_out:
            return RunResult(
                status=RunStatus.TIMEOUT,
                exit_code=exit_code,
                reason=f"stopped at the {limits.wall_s:g} s wall-clock limit",
                **common,
            )
        if not started or exit_code is None:
            return RunResult(
                status=RunStatus.ERROR,
                exit_code=exit_code,
                reason="the sandbox failed to start the program",
                **common,
            )
        if exit_code > 128:
            with contextlib.suppress(ValueError):
                number = signal.Signals(exit_code - 128)
                template = _SIGNAL_REASONS.get(number, f"it was ended by {number.name}")
                reason = template.format(cpu_s=limits.cpu_s, file_mb=limits.file_mb)
                return RunResult(
                    status=RunStatus.KILLED, exit_code=exit_code, reason=reason, **common
                )
        reason = "" if exit_code == 0 else f"exited with code {exit_code}"
        return RunResult(status=RunStatus.EXITED, exit_code=exit_code, reason=reason, **common)
