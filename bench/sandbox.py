"""The ``sandbox`` benchmark section: what bubblewrap adds to running code, and at what scale.

Every sandboxed figure has its floor beside it: the same command run directly, in the same
benchmark run, so the difference is the sandbox's own cost (namespaces, mounts, rlimits,
the id mapping, reading capped pipes) and not Python's or pytest's start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app.config import REPO_DIR
from app.corpus import load_corpus
from app.corpus.models import CodingSpec
from app.sandbox import RunRequest, get_executor
from app.sandbox.testrun import (
    RUNNER_FILE,
    RUNNER_SOURCE_PATH,
    SOLUTION_FILE,
    TEST_FILE,
    TestRunStatus,
    run_coding_tests,
)
from bench.common import Table, percentiles

# A typical coding question when the corpus has none: a small LRU cache, 8 tests.
SAMPLE = CodingSpec(
    starter="class LRUCache:\n    def __init__(self, capacity): ...\n",
    solution="""from collections import OrderedDict


class LRUCache:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._data: OrderedDict[object, object] = OrderedDict()

    def get(self, key, default=None):
        if key not in self._data:
            return default
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key, value) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
""",
    visible_tests="from solution import LRUCache\n\n\ndef test_get():\n"
    "    c = LRUCache(1)\n    c.put('a', 1)\n    assert c.get('a') == 1\n",
    hidden_tests="""import pytest

from solution import LRUCache


def test_get_missing_returns_default():
    assert LRUCache(2).get("x", 7) == 7


def test_evicts_least_recent():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1


@pytest.mark.parametrize("capacity", [1, 2, 10])
def test_never_grows_past_capacity(capacity):
    cache = LRUCache(capacity)
    for i in range(50):
        cache.put(i, i)
    assert len(cache) == capacity


def test_update_refreshes():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10 and cache.get("b") is None


def test_bad_capacity():
    with pytest.raises(ValueError):
        LRUCache(0)
""",
)


def _typical() -> tuple[str, CodingSpec]:
    coding = sorted(
        (q for q in load_corpus(REPO_DIR / "corpus").questions.values() if q.coding is not None),
        key=lambda q: q.id,
    )
    if coding:
        question = coding[len(coding) // 2]
        assert question.coding is not None
        return question.id, question.coding
    return "built-in LRU cache sample (the corpus has no coding question)", SAMPLE


def _direct_python(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append(time.perf_counter() - started)
    return samples


def _direct_tests(spec: CodingSpec, runs: int) -> list[float]:
    """The trusted runner on the same files, without the sandbox."""
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / RUNNER_FILE).write_text(RUNNER_SOURCE_PATH.read_text())
        (work / TEST_FILE).write_text(spec.hidden_tests)
        (work / SOLUTION_FILE).write_text(spec.solution)
        for _ in range(runs):
            read, write = os.pipe()
            settings = json.dumps({"nonce": "0" * 32, "canaries": ["test_c0", "test_c1"]})
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, RUNNER_FILE, TEST_FILE],
                cwd=work,
                input=settings.encode(),
                env={**os.environ, "RESULT_FD": str(write), "PYTHONDONTWRITEBYTECODE": "1"},
                pass_fds=[write],
                capture_output=True,
                check=True,
            )
            samples.append(time.perf_counter() - started)
            os.close(write)
            with os.fdopen(read, "rb") as channel:
                assert b"\tdone\t" in channel.read()
    return samples


def sandbox(quick: bool) -> Table:
    table = Table(["measurement", "p50 ms", "p99 ms", "target"])
    executor = get_executor()
    availability = executor.available()
    if not availability.ok:
        table.add(measurement=f"unavailable: {availability.reason}", target="-")
        return table
    name, spec = _typical()
    starts = 30 if quick else 100
    test_runs = 5 if quick else 15

    async def sandboxed_python() -> list[float]:
        samples = []
        request = RunRequest(argv=["python", "-c", "pass"])
        for _ in range(starts):
            started = time.perf_counter()
            result = await executor.run(request)
            samples.append(time.perf_counter() - started)
            assert result.ok, result
        return samples

    async def sandboxed_tests(count: int) -> list[float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            report = await run_coding_tests(spec, spec.solution, executor=executor)
            samples.append(time.perf_counter() - started)
            assert report.status == TestRunStatus.PASSED, report
        return samples

    async def concurrent(width: int) -> tuple[float, float]:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        reports = await asyncio.gather(
            *(run_coding_tests(spec, spec.solution, executor=executor) for _ in range(width))
        )
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
        assert all(r.status == TestRunStatus.PASSED for r in reports)
        return elapsed, max(lags)

    floor_python = _direct_python(starts)
    boxed_python = asyncio.run(sandboxed_python())
    floor_tests = _direct_tests(spec, test_runs)
    boxed_tests = asyncio.run(sandboxed_tests(test_runs))
    rounds = 3
    ones = [asyncio.run(concurrent(1))[0] for _ in range(rounds)]
    eights = [asyncio.run(concurrent(8)) for _ in range(rounds)]
    one = float(np.median(ones))
    eight = float(np.median([e for e, _ in eights]))
    lag = max(stall for _, stall in eights)

    def row(label: str, samples: list[float], target: str = "-") -> tuple[float, float]:
        p50, p99 = percentiles(samples)
        table.add(
            **{"measurement": label, "p50 ms": round(p50, 1), "p99 ms": round(p99, 1)},
            target=target,
        )
        return p50, p99

    d50, d99 = row(f"`python -c pass`, direct (floor), {starts} runs", floor_python)
    s50, s99 = row(f"`python -c pass`, sandboxed, {starts} runs", boxed_python)
    table.add(
        measurement="sandbox overhead on `python -c pass` (sandboxed - floor)",
        **{"p50 ms": round(s50 - d50, 1), "p99 ms": round(s99 - d99, 1)},
        target="p50 < 150, p99 < 400",
    )
    f50, f99 = row(f"hidden tests of {name}, runner direct (floor), {test_runs} runs", floor_tests)
    t50, t99 = row(
        f"hidden tests of {name}, sandboxed end to end, {test_runs} runs",
        boxed_tests,
        target="< 2000",
    )
    table.add(
        measurement="sandbox overhead on a hidden-test run (sandboxed - floor)",
        **{"p50 ms": round(t50 - f50, 1), "p99 ms": round(t99 - f99, 1)},
        target="p50 < 150, p99 < 400",
    )
    table.add(
        measurement=f"8 concurrent hidden-test runs, wall ms, median of {rounds} (one alone: "
        f"{one * 1000:.0f} ms, ratio {eight / one:.2f} on {os.cpu_count()} cores)",
        **{"p50 ms": round(eight * 1000, 1), "p99 ms": "-"},
        target="-",
    )
    table.add(
        measurement=f"worst event-loop stall in {rounds} rounds of 8 concurrent runs (UI stall)",
        **{"p50 ms": round(lag * 1000, 1), "p99 ms": "-"},
        target="< 100",
    )
    return table
