"""Local processes for tests and benchmarks: a free loopback port, a real `chroma run`
server, and the flags for Debian's headless Chromium. Everything binds to 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Headless Chromium that never reaches for the network on its own.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class LocalServerError(RuntimeError):
    """A local server did not start; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def chroma_server(folder: Path, timeout_s: float = 60) -> Iterator[tuple[str, int]]:
    """`chroma run` on a free port of 127.0.0.1 with its data and log in ``folder``."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if chroma is None:
        raise LocalServerError("the `chroma` command is not installed (it ships with chromadb)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                chroma,
                "run",
                "--path",
                str(folder / "db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise LocalServerError(
                            f"chroma run did not start: {log_path.read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.2)
            yield "127.0.0.1", port
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
