"""The bubblewrap executor's own promises: what it binds, and how it says it cannot run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from app.config import REPO_DIR, Settings
from app.sandbox import EXECUTORS, BubblewrapExecutor, RunRequest, RunStatus, get_executor
from app.sandbox.bubblewrap import INSTALL_HINT, USERNS_HINT, PythonLayout


def test_registry_and_setting() -> None:
    assert set(EXECUTORS) == {"bubblewrap"}
    assert Settings().code_executor == "bubblewrap"
    assert isinstance(get_executor("bubblewrap"), BubblewrapExecutor)
    assert get_executor("bubblewrap") is get_executor("bubblewrap")  # one probe per process
    with pytest.raises(ValueError, match="unknown code executor 'docker'; known: bubblewrap"):
        get_executor("docker")


def test_missing_bubblewrap_is_unavailable_and_runs_nothing(tmp_path: Path) -> None:
    executor = BubblewrapExecutor(bwrap=str(tmp_path / "no-bwrap"))
    availability = executor.available()
    assert not availability.ok and availability.reason == INSTALL_HINT
    marker = tmp_path / "ran"
    request = RunRequest(argv=["/bin/sh", "-c", f"touch {marker}"])
    result = asyncio.run(executor.run(request))
    assert result.status == RunStatus.UNAVAILABLE
    assert "apt install bubblewrap" in result.reason
    assert not marker.exists()


def test_refused_namespaces_are_explained(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'bwrap: No permissions to creating new namespace, likely because the kernel "
        "does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    availability = BubblewrapExecutor(bwrap=str(fake)).available()
    assert not availability.ok
    assert availability.reason.startswith(USERNS_HINT)
    assert "No permissions to creating new namespace" in availability.reason


def test_command_binds_only_the_system_and_the_interpreter() -> None:
    executor = BubblewrapExecutor()
    layout = PythonLayout.current()
    request = RunRequest(argv=["python", "-c", "pass"], files={"a.py": "x"})
    args = executor.command(request, {"a.py": 5}, 6)
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in args
    assert "--clearenv" in args and "--share-net" not in args
    sources = [args[i + 1] for i, arg in enumerate(args) if arg in {"--bind", "--ro-bind"}]
    allowed = {"/usr", *layout.ro_dirs, *layout.ro_files}
    assert set(sources) <= allowed | {p for p in ("/bin", "/lib", "/lib64", "/sbin")}
    assert "--bind" not in args  # nothing of the host is writable
    home, repo = str(Path.home()), str(REPO_DIR)
    data = str(Settings().data_dir)
    for source in sources:
        assert source not in {home, repo, data, "/", "/etc"}
        assert not source.startswith(data)
        if source.startswith(repo):  # only the virtualenv's packages and config
            assert source.startswith(sys.prefix) and (
                source.endswith("site-packages") or source.endswith("pyvenv.cfg")
            ), source
    env = {args[i + 1]: args[i + 2] for i, arg in enumerate(args) if arg == "--setenv"}
    assert env["HOME"] == "/tmp" and env["PYTHONHASHSEED"] == "0"
    assert not any("KEY" in name for name in env)
