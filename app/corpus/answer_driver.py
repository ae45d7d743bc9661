"""Runs one model answer's code blocks inside the sandbox: in order, in one namespace.

    python _answer.py        (stdin: {"blocks": [{"kind", "source", "name"}], "timeout_s": 10})

A ```python block is executed; a ```pycon block is run by :mod:`doctest` (every ``>>>``
example's output must match, ``...`` matches anything). Each block gets ``timeout_s`` of
wall clock (SIGALRM). One JSON line per block goes to the result channel (``$RESULT_FD``):
``{"index", "ok", "line", "error", "seconds"}``, where ``line`` is the 1-based line inside
the block that failed. The first failing block ends the run; the blocks after it depend on
it more often than not. Model answers are trusted text, but they run through the same
sandbox as everything else. Only the standard library is used.
"""

from __future__ import annotations

import sys


class BlockTimeout(BaseException):
    """A block ran past its time limit (a BaseException, so ``except Exception`` misses it)."""


def _failure_line(exc: BaseException, name: str) -> int | None:
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename == name:
        return exc.lineno
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == name]
    return lines[-1] if lines else None


def _run_python(source: str, name: str, namespace: dict[str, object]) -> tuple[int | None, str]:
    import traceback

    try:
        code = compile(source, name, "exec", dont_inherit=True)  # not this file's __future__
        exec(code, namespace)
    except BlockTimeout:
        raise
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _failure_line(exc, name), text.splitlines()[-1] if text else type(exc).__name__
    return None, ""


def _run_pycon(source: str, name: str, namespace: dict[str, object]) -> tuple[int | None, str]:
    import doctest
    import io

    problems: list[tuple[int, str]] = []

    class Runner(doctest.DocTestRunner):
        def report_failure(
            self, out: object, test: doctest.DocTest, example: doctest.Example, got: str
        ) -> None:
            problems.append(
                (example.lineno + 1, f"expected {example.want.strip()!r}, got {got.strip()!r}")
            )

        def report_unexpected_exception(
            self, out: object, test: doctest.DocTest, example: doctest.Example, exc_info: object
        ) -> None:
            info = exc_info if isinstance(exc_info, tuple) else (None, None, None)
            error = info[1]
            if isinstance(error, BlockTimeout):
                raise error
            text = f"{type(error).__name__}: {error}" if error is not None else "an exception"
            problems.append((example.lineno + 1, f"{example.source.strip()!r} raised {text}"))

    test = doctest.DocTestParser().get_doctest(source, namespace, name, name, 0)
    runner = Runner(optionflags=doctest.ELLIPSIS, verbose=False)
    runner.run(test, out=io.StringIO().write, clear_globs=False)
    return problems[0] if problems else (None, "")


def main() -> None:
    import contextlib
    import json
    import os
    import signal
    import tempfile
    import time

    settings = json.loads(sys.stdin.read())
    fd = int(os.environ.pop("RESULT_FD"))
    timeout = float(settings.get("timeout_s", 10))
    os.chdir(tempfile.mkdtemp(prefix="answer-"))  # blocks may write files where they run
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}

    def on_alarm(signum: int, frame: object) -> None:
        raise BlockTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    for index, block in enumerate(settings["blocks"]):
        started = time.perf_counter()
        run = _run_pycon if block["kind"] == "pycon" else _run_python
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            line, error = run(block["source"], block["name"], namespace)
        except BlockTimeout:
            line, error = None, f"did not finish within {timeout:g} s"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        record = {
            "index": index,
            "ok": not error,
            "line": line,
            "error": error[:1000],
            "seconds": round(time.perf_counter() - started, 3),
        }
        os.write(fd, (json.dumps(record) + "\n").encode())
        if error:
            break
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nothing of ours is lost
            stream.flush()
    os._exit(0)  # threads or atexit handlers a block left behind must not hold the run


if __name__ == "__main__":
    main()
