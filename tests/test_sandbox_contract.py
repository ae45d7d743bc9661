"""The executor contract: every registered executor that is available must pass all of this.

A new executor (a remote sandbox service, say) is registered in ``app.sandbox.EXECUTORS``
and then runs this same suite: basics (output, exit codes, files, stdin, limits, the
result channel), isolation (no network, no host files, no caller environment or keys) and
hostile programs (fork bombs, memory bombs, huge writes and prints, escape attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app.config import REPO_DIR
from app.sandbox import EXECUTORS, CodeExecutor, Limits, RunRequest, RunResult, RunStatus
from app.sandbox.base import TMP_FILES

FAKE_KEYS = {
    "INTERVIEWER_LLM_API_KEY": "sk-interviewer-fake-key-0123456789",
    "OPENAI_API_KEY": "sk-openai-fake-key-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-fake-key-0123456789",
}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request: pytest.FixtureRequest) -> CodeExecutor:
    instance = EXECUTORS[request.param]()
    availability = instance.available()
    if not availability.ok:
        if os.environ.get("CI"):
            pytest.fail(f"{request.param} must be available in CI: {availability.reason}")
        pytest.skip(f"{request.param} is unavailable here: {availability.reason}")
    return instance


@pytest.fixture(autouse=True)
def _fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys in the caller's environment, which no sandboxed program may see."""
    for key, value in FAKE_KEYS.items():
        monkeypatch.setenv(key, value)


def run(executor: CodeExecutor, code: str, **fields: object) -> RunResult:
    request = RunRequest(argv=["python", "-c", textwrap.dedent(code)], **fields)  # type: ignore[arg-type]
    return asyncio.run(executor.run(request))


def host_pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- basics ---------------------------------------------------------------------------------


def test_stdout_stderr_and_exit_code(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """,
    )
    assert result.status == RunStatus.EXITED
    assert result.exit_code == 3
    assert result.stdout == "to stdout\n"
    assert result.stderr == "to stderr\n"
    assert not result.truncated and not result.ok
    assert result.duration_s > 0


def test_clean_exit_is_ok(executor: CodeExecutor) -> None:
    result = run(executor, "pass")
    assert result.ok and result.reason == ""


def test_same_python_with_the_test_packages(executor: CodeExecutor) -> None:
    result = run(
        executor,
        "import sys, pytest, numpy; sys.stdout.write(sys.version + '|' + pytest.__version__)",
    )
    assert result.ok, result.stderr
    version, pytest_version = result.stdout.split("|")
    assert version == sys.version
    assert pytest_version == pytest.__version__


def test_files_round_trip_and_only_writable_files_can_change(executor: CodeExecutor) -> None:
    blob = bytes(range(256)) * 4
    result = run(
        executor,
        """
        import os
        assert open("data.bin", "rb").read() == bytes(range(256)) * 4
        print(open("notes.txt", encoding="utf-8").read())
        with open("notes.txt", "a", encoding="utf-8") as f:
            f.write(" (edited)")
        print(open("notes.txt", encoding="utf-8").read())
        for attempt in (lambda: open("data.bin", "wb"), lambda: open("new.txt", "w"),
                        lambda: os.remove("data.bin"), lambda: os.rename("data.bin", "x")):
            try:
                attempt()
            except OSError as exc:
                print("refused", type(exc).__name__)
        open("/tmp/scratch", "w").write("tmp is writable")
        print(open("/tmp/scratch").read(), os.getcwd())
        """,
        files={"data.bin": blob, "notes.txt": "héllo wörld"},
        readonly=frozenset({"data.bin"}),
    )
    assert result.ok, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "héllo wörld"
    assert lines[1] == "héllo wörld (edited)"
    assert len([line for line in lines if line.startswith("refused")]) == 4
    assert lines[-1].startswith("tmp is writable ")


def test_stdin_is_delivered_then_closed(executor: CodeExecutor) -> None:
    payload = b"x" * 200_000 + b"\xff end"
    result = run(
        executor,
        "import sys; data = sys.stdin.buffer.read(); print(len(data), data[-4:], sys.stdin.read())",
        stdin=payload,
    )
    assert result.ok, result.stderr
    assert result.stdout.strip() == f"{len(payload)} b' end'"


def test_result_channel(executor: CodeExecutor) -> None:
    code = "import os; os.write(int(os.environ['RESULT_FD']), b'report line\\n'); print('out')"
    result = run(executor, code, result_channel=True)
    assert result.ok, result.stderr
    assert result.channel == "report line\n"
    assert result.stdout == "out\n"
    plain = run(executor, "import os; print(os.environ.get('RESULT_FD'))")
    assert plain.stdout == "None\n" and plain.channel == ""


def test_output_is_capped_and_still_a_result(executor: CodeExecutor) -> None:
    started = time.perf_counter()
    result = run(
        executor,
        """
        import sys
        chunk = "y" * 1_000_000
        for _ in range(100):            # 100 MB
            sys.stdout.write(chunk)
        sys.stdout.flush()
        print("done", file=sys.stderr)
        """,
        limits=Limits(output_bytes=64_000, wall_s=30),
    )
    assert result.status == RunStatus.EXITED and result.exit_code == 0
    assert result.truncated
    assert len(result.stdout) == 64_000
    assert result.stderr == "done\n"
    assert time.perf_counter() - started < 20


# -- limits ---------------------------------------------------------------------------------


def test_wall_clock_timeout_kills_the_whole_group(executor: CodeExecutor) -> None:
    marker = f"sandbox-marker-{os.getpid()}-{time.monotonic_ns()}"
    result = run(
        executor,
        f"""
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; sleep 1000; echo {marker}"],
                         start_new_session=True)
        while True:
            time.sleep(0.1)
        """,
        limits=Limits(wall_s=1.5),
    )
    assert result.status == RunStatus.TIMEOUT
    assert "1.5 s wall-clock limit" in result.reason
    assert result.duration_s < 5
    time.sleep(0.2)
    assert host_pids_with(marker) == []


def test_cpu_limit(executor: CodeExecutor) -> None:
    result = run(executor, "while True: pass", limits=Limits(cpu_s=1, wall_s=20))
    assert result.status == RunStatus.KILLED
    assert "CPU time limit (1 s)" in result.reason
    assert result.duration_s < 10


def test_memory_limit(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        blocks = []
        try:
            while True:
                blocks.append(bytearray(64 * 1024 * 1024))
        except MemoryError:
            print("MemoryError after", len(blocks) * 64, "MB")
        """,
        limits=Limits(memory_mb=256),
    )
    assert result.ok, result.stderr
    used = int(result.stdout.split()[2])
    assert 0 <= used <= 256


def test_one_gigabyte_write_stops_at_the_file_limit(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        chunk = b"z" * (1024 * 1024)
        with open("/tmp/huge", "wb") as f:
            for _ in range(1024):       # 1 GB
                f.write(chunk)
        """,
        limits=Limits(file_mb=8),
    )
    # Python ignores SIGXFSZ, so the write fails with EFBIG; other programs are killed.
    assert result.status == RunStatus.EXITED and result.exit_code == 1
    assert "File too large" in result.stderr
    shell = asyncio.run(
        executor.run(
            RunRequest(
                argv=["/bin/sh", "-c", "head -c 1073741824 /dev/zero > /tmp/huge"],
                limits=Limits(file_mb=8),
            )
        )
    )
    assert shell.status == RunStatus.KILLED
    assert "file larger than the 8 MB limit" in shell.reason


def test_many_files_fill_only_the_private_tmpfs(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        import os
        written = 0
        try:
            for i in range(200):
                with open(f"/tmp/part{i}", "wb") as f:
                    f.write(b"q" * (1024 * 1024))
                written += 1
        except OSError as exc:
            print(written, exc.errno)
        """,
        limits=Limits(file_mb=8),
    )
    assert result.ok, result.stderr
    written, errno = result.stdout.split()
    assert int(written) <= 8 * TMP_FILES and errno == "28"  # ENOSPC


def test_open_files_limit(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        handles = []
        try:
            while True:
                handles.append(open("/dev/null"))
        except OSError as exc:
            print(len(handles), exc.errno)
        """,
        limits=Limits(nofile=32),
    )
    assert result.ok, result.stderr
    count, errno = result.stdout.split()
    assert int(count) < 32 and errno == "24"  # EMFILE


def test_fork_bomb_is_contained(executor: CodeExecutor) -> None:
    marker = f"forkbomb-{os.getpid()}-{time.monotonic_ns()}"
    before = len(list(Path("/proc").glob("[0-9]*")))
    result = run(
        executor,
        f"""
        import os, sys, time
        sys.argv.append("{marker}")
        failures = 0
        while True:
            try:
                os.fork()
            except OSError:
                failures += 1
                time.sleep(0.01)
        """,
        limits=Limits(wall_s=3, nproc=32),
    )
    assert result.status in {RunStatus.TIMEOUT, RunStatus.KILLED}
    assert result.duration_s < 10
    time.sleep(0.3)
    after = len(list(Path("/proc").glob("[0-9]*")))
    assert after < before + 10  # nothing left behind on the host


# -- isolation ------------------------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(executor: CodeExecutor) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(3)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    result = run(
        executor,
        f"""
        import socket
        for address in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("10.0.0.1", 80)]:
            try:
                socket.create_connection(address, timeout=2)
                print("connected", address)
            except OSError as exc:
                print("refused", exc.errno)
        try:
            socket.getaddrinfo("example.com", 80)
            print("resolved")
        except OSError:
            print("no dns")
        """,
    )
    thread.join()
    server.close()
    assert result.ok, result.stderr
    assert "connected" not in result.stdout and "resolved" not in result.stdout
    assert result.stdout.count("refused") == 3
    assert accepted == []


def test_host_files_home_repo_and_data_dir_are_invisible(
    executor: CodeExecutor, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    canary = data_dir / "canary.txt"
    canary.write_text("secret interview history")
    stamp = canary.stat().st_mtime_ns
    probes = [
        "/etc/passwd",
        "/etc/shadow",
        str(canary),
        str(REPO_DIR / "README.md"),
        str(REPO_DIR / "corpus" / "topics.yaml"),
        str(Path.home() / ".bashrc"),
        str(Path.home() / ".ssh"),
        str(Path(sys.prefix) / "bin" / "activate"),
    ]
    result = run(
        executor,
        f"""
        import os
        for path in {probes!r}:
            print(path, "visible" if os.path.exists(path) else "absent")
        try:
            open({str(canary)!r}, "w").write("overwritten")
        except OSError as exc:
            print("write refused", exc.errno)
        print(sorted(os.listdir("/")))
        """,
    )
    assert result.ok, result.stderr
    for line in result.stdout.splitlines()[: len(probes)]:
        assert line.endswith(" absent"), line
    assert "write refused" in result.stdout
    assert "'etc'" not in result.stdout.splitlines()[-1]
    assert canary.read_text() == "secret interview history"
    assert canary.stat().st_mtime_ns == stamp


def test_environment_and_keys_are_not_passed(executor: CodeExecutor) -> None:
    assert os.environ["OPENAI_API_KEY"] == FAKE_KEYS["OPENAI_API_KEY"]
    result = run(
        executor,
        """
        import os
        print(sorted(os.environ))
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    print(open(f"/proc/{pid}/environ", "rb").read())
                except OSError:
                    pass
        """,
    )
    assert result.ok, result.stderr
    for value in FAKE_KEYS.values():
        assert value not in result.stdout
    assert "API_KEY" not in result.stdout
    names = eval(result.stdout.splitlines()[0])
    assert set(names) <= {
        "PATH", "HOME", "TMPDIR", "LANG", "PWD", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED",
        "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LC_CTYPE",
    }  # fmt: skip


def test_escape_attempts_fail(executor: CodeExecutor) -> None:
    result = run(
        executor,
        """
        import ctypes, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        print("setuid0", libc.setuid(0), os.getuid() != 0 or os.geteuid() != 0)
        print("mount", libc.mount(b"none", b"/usr", b"tmpfs", 0, None))
        caps = set()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                status = open(f"/proc/{pid}/status").read().splitlines()
                caps |= {l.split()[1] for l in status if l.startswith(("CapEff", "CapPrm"))}
        print("caps", sorted(caps))  # nothing in the sandbox, not even its pid 1, holds any
        print("chroot", libc.chroot(b"/proc/1/root"))
        print("system", os.system("cat /etc/passwd 2>/dev/null"))
        out = subprocess.run(["ls", "-A", "/root", "/home"], capture_output=True, text=True)
        print("listing", out.stdout.split())
        print("hostname", os.uname().nodename)
        """,
    )
    assert result.ok, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["setuid0"] == "-1 True"
    assert lines["mount"] == "-1" and lines["chroot"] == "-1"
    assert lines["caps"] == "['0000000000000000']"
    assert lines["system"] != "0"
    assert ".ssh" not in lines["listing"] and ".bashrc" not in lines["listing"]
    assert lines["hostname"] == "sandbox"


def test_concurrent_runs_do_not_stall_the_event_loop(executor: CodeExecutor) -> None:
    async def scenario() -> tuple[list[RunResult], float]:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        tick = asyncio.create_task(ticker())
        request = RunRequest(argv=["python", "-c", "import time; time.sleep(0.5); print('ok')"])
        results = await asyncio.gather(*(executor.run(request) for _ in range(8)))
        stop.set()
        await tick
        return list(results), max(lags)

    results, worst_lag = asyncio.run(scenario())
    assert all(r.ok and r.stdout == "ok\n" for r in results)
    assert worst_lag < 0.25


def test_unknown_file_names_are_refused() -> None:
    with pytest.raises(ValueError, match="plain name"):
        RunRequest(argv=["python"], files={"../escape.py": "x"})
    with pytest.raises(ValueError, match="readonly"):
        RunRequest(argv=["python"], files={"a.py": "x"}, readonly=frozenset({"b.py"}))
