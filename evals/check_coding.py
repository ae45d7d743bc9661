"""Authoring check for coding questions (``kind: coding``) and their labelled candidates.

    .venv/bin/python evals/check_coding.py corpus/*.coding.yaml
    .venv/bin/python evals/check_coding.py --candidates corpus/*.coding.yaml
    .venv/bin/python evals/check_coding.py --only ds-code-lru-cache corpus/*.coding.yaml

For every coding question it writes code as ``solution.py`` beside a test module in a fresh
temporary directory and runs pytest in a subprocess, in its own session, with the question's
wall-clock limit (``time_limit_s``) and address-space limit (``memory_mb``). It checks that

* the reference solution passes every visible and every hidden test;
* the starter fails at least one hidden test (the table shows how many it fails);
* every ```python block of the model answer runs, in order, in one namespace, within 10 s
  (```python min=X.Y blocks are skipped on older Pythons, ```python skip: ... never run).

``--candidates`` also runs each labelled candidate solution in
``evals/datasets/code/<topic>.jsonl`` against the hidden tests and prints its pass fraction
beside the ``correctness`` label, so labels can be compared with what the tests measure.
Structural problems in the labels (unknown question or criterion ids, scores out of range,
duplicate ids, a ``syntax_error`` item that compiles) fail the run; a label that differs from
the pass fraction is only flagged (``?``), since the two need not agree.

A canary test that always fails is appended to every test module: if it is reported as
passed, the code under test tampered with the runner, and the run counts as 0 passed
(``TAMPERED``). A run that writes no report (for example ``os._exit(0)`` at import) counts as
0 passed (``NO-REPORT``). This is an authoring check, not a sandbox: the product runs
candidates' code in its bubblewrap sandbox.

Needs only the standard library and PyYAML (a dependency of the project), plus pytest and
NumPy in the interpreter that runs the tests (``--python``, default: this interpreter).
Exit status: 0 if everything passed, 1 on any failure.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CANARY = "test_zz_runner_canary"
CANARY_CODE = f"\n\ndef {CANARY}():\n    raise AssertionError('canary: this test must fail')\n"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
PYTEST_INI = "[pytest]\naddopts =\nconsole_output_style = classic\n"
FENCE_LIMIT_S = 10.0
CANDIDATE_TAGS = {
    "correct",
    "unidiomatic",
    "off_by_one",
    "misses_failure_path",
    "syntax_error",
    "timeout",
    "malicious",
}


@dataclass
class RunResult:
    status: str  # ok, failed, TIMEOUT, NO-REPORT, TAMPERED
    passed: int
    total: int
    seconds: float
    failures: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


def expected_tests(test_code: str) -> list[str]:
    """Module-level ``test_*`` functions (parametrised ones count once, by name)."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]


def _limits(memory_mb: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))}
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _run_process(
    cmd: list[str], cwd: Path, time_limit_s: float, memory_mb: int
) -> tuple[int | None, str, float]:
    """Run in a new session; on timeout kill the whole process group. rc None = timed out."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_limits(memory_mb),  # the child only sets a limit, then execs
    )
    try:
        out, _ = proc.communicate(timeout=time_limit_s)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace"), time.perf_counter() - start


def run_tests(
    code: str,
    tests: str,
    *,
    time_limit_s: float,
    memory_mb: int,
    python: str,
    retry_timeouts: float | None = None,
) -> RunResult:
    """Run the tests against `code` under the wall-clock limit.

    With retry_timeouts (seconds), a run that exceeds the limit is repeated with
    pytest-timeout at that many seconds per test, so the tests that do finish still count;
    the status stays TIMEOUT, since a sandbox that enforces only the wall clock scores it 0.
    """
    result = _pytest_once(code, tests, time_limit_s, memory_mb, python, None)
    if result.status == "TIMEOUT" and retry_timeouts is not None:
        count = len(expected_tests(tests))
        again = _pytest_once(
            code, tests, retry_timeouts * (count + 2) + 10, memory_mb, python, retry_timeouts
        )
        if again.status != "TIMEOUT":
            again.status = "TIMEOUT"
            again.seconds += result.seconds
            return again
    return result


def _pytest_once(
    code: str,
    tests: str,
    time_limit_s: float,
    memory_mb: int,
    python: str,
    per_test_timeout: float | None,
) -> RunResult:
    names = expected_tests(tests)
    with (
        tempfile.TemporaryDirectory(prefix="coding-") as work,
        tempfile.TemporaryDirectory(prefix="coding-report-") as report_dir,
    ):
        workdir = Path(work)
        (workdir / "solution.py").write_text(code, encoding="utf-8")
        (workdir / "test_solution.py").write_text(tests + CANARY_CODE, encoding="utf-8")
        (workdir / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        junit = Path(report_dir) / "report.xml"
        timeout_args = (
            ["-p", "no:timeout"]
            if per_test_timeout is None
            else [f"--timeout={per_test_timeout}", "--timeout-method=signal"]
        )
        cmd = [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            *timeout_args,
            f"--junitxml={junit}",
            "test_solution.py",
        ]
        rc, out, seconds = _run_process(cmd, workdir, time_limit_s, memory_mb)
        if rc is None:
            return RunResult("TIMEOUT", 0, len(names), seconds, ["time limit"], out)
        if not junit.is_file():
            return RunResult("NO-REPORT", 0, len(names), seconds, ["no report"], out)
        try:
            cases = ET.parse(junit).getroot().iter("testcase")
        except ET.ParseError:
            return RunResult("NO-REPORT", 0, len(names), seconds, ["unreadable report"], out)
        outcomes: dict[str, bool] = {}
        collection_error = False
        for case in cases:
            name = case.get("name", "")
            bad = any(child.tag in ("failure", "error", "skipped") for child in case)
            if name == "test_solution" or not name.startswith("test"):  # collection error
                collection_error = True
                continue
            outcomes[name] = not bad
        canary = outcomes.pop(CANARY, None)
        if canary is True:
            return RunResult("TAMPERED", 0, len(names), seconds, ["canary passed"], out)
        reported = {name.split("[", 1)[0] for name in outcomes}
        missing = [n for n in names if n not in reported]
        total = len(outcomes) + len(missing)
        passed = sum(outcomes.values())
        failures = sorted(n for n, ok in outcomes.items() if not ok) + missing
        if collection_error and not outcomes:
            failures = ["collection error"]
        status = "ok" if passed == total and total and rc == 1 else "failed"
        # rc is 1 because the canary fails; 0 would mean the canary was not even run.
        if passed == total and rc != 1:
            status = "TAMPERED"
            passed = 0
        return RunResult(status, passed, total, seconds, failures, out)


def python_blocks(markdown: str) -> list[tuple[str, str]]:
    """(info string, code) of every fenced block whose language is python."""
    return [
        (info.strip(), code)
        for info, code in FENCE.findall(markdown)
        if info.strip().split(" ", 1)[0] == "python"
    ]


def check_fences(model_answer: str, python: str) -> tuple[str, float]:
    blocks = []
    for info, code in python_blocks(model_answer):
        rest = info[len("python") :].strip()
        if rest.startswith("skip:"):
            continue
        match = re.match(r"min=(\d+)\.(\d+)", rest)
        if match and sys.version_info[:2] < (int(match[1]), int(match[2])):
            continue
        blocks.append(code)
    if not blocks:
        return "none", 0.0
    script = "ns = {}\n" + "".join(
        f"exec(compile({code!r}, 'block{i}', 'exec'), ns)\n" for i, code in enumerate(blocks, 1)
    )
    with tempfile.TemporaryDirectory(prefix="coding-fence-") as work:
        rc, out, seconds = _run_process([python, "-c", script], Path(work), FENCE_LIMIT_S, 1024)
    if rc == 0:
        return f"ok ({len(blocks)})", seconds
    lines = out.strip().splitlines()
    reason = "timeout" if rc is None else lines[-1] if lines else f"rc={rc}"
    return f"FAIL: {reason}", seconds


def load_questions(paths: list[Path]) -> list[tuple[str, dict]]:
    questions = []
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        topic = data["topic"]
        for question in data["questions"]:
            if question.get("kind") == "coding":
                questions.append((topic, question))
    return questions


def _limits_of(question: dict) -> tuple[float, int]:
    coding = question["coding"]
    return float(coding.get("time_limit_s", 10)), int(coding.get("memory_mb", 512))


def check_question(question: dict, python: str) -> dict:
    coding = question["coding"]
    time_limit_s, memory_mb = _limits_of(question)

    def run(code: str, tests: str) -> RunResult:
        return run_tests(code, tests, time_limit_s=time_limit_s, memory_mb=memory_mb, python=python)

    solution_hidden = run(coding["solution"], coding["hidden_tests"])
    solution_visible = run(coding["solution"], coding["visible_tests"])
    starter_hidden = run(coding["starter"], coding["hidden_tests"])
    fences, _ = check_fences(question["model_answer"], python)
    ok = (
        solution_hidden.status == "ok"
        and solution_visible.status == "ok"
        and starter_hidden.passed < starter_hidden.total
        and not fences.startswith("FAIL")
    )
    return {
        "id": question["id"],
        "ok": ok,
        "solution_hidden": solution_hidden,
        "solution_visible": solution_visible,
        "starter_hidden": starter_hidden,
        "fences": fences,
    }


def print_questions(rows: list[dict], verbose: bool) -> None:
    header = (
        f"{'question':44} {'solution hidden':>16} {'visible':>8} {'starter fails':>14} "
        f"{'fences':>8} {'time s':>7}  result"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        sh, sv, st = row["solution_hidden"], row["solution_visible"], row["starter_hidden"]
        print(
            f"{row['id']:44} {f'{sh.passed}/{sh.total}':>16} {f'{sv.passed}/{sv.total}':>8} "
            f"{f'{st.total - st.passed}/{st.total}':>14} {row['fences'][:8]:>8} "
            f"{sh.seconds:7.2f}  {'PASS' if row['ok'] else 'FAIL'}"
        )
        if not row["ok"] or verbose:
            for label, result in (("solution/hidden", sh), ("solution/visible", sv)):
                if result.status != "ok":
                    print(f"    {label}: {result.status}: {', '.join(result.failures)}")
                    print(textwrap.indent(result.output[-3000:], "      | "))
            if st.passed == st.total:
                print("    starter passes every hidden test")
            if row["fences"].startswith("FAIL"):
                print(f"    model answer: {row['fences']}")


def extract_code(answer: str) -> str:
    blocks = python_blocks(answer)
    if not blocks:
        return answer
    return blocks[0][1]


def _labels_problems(item: dict, question: dict | None, seen: set[str]) -> list[str]:
    problems = []
    item_id = item.get("id", "?")
    if item_id in seen:
        problems.append("duplicate id")
    seen.add(item_id)
    if question is None:
        return [*problems, f"unknown question_id {item.get('question_id')!r}"]
    if not item_id.startswith(question["id"] + "--"):
        problems.append("id must be '<question_id>--NN'")
    unknown = set(item.get("tags", [])) - CANDIDATE_TAGS
    if unknown:
        problems.append(f"unknown tags {sorted(unknown)}")
    criteria = {c["id"]: c["weight"] for c in question["rubric"]["criteria"]}
    scores = item.get("criterion_scores", {})
    if set(scores) != set(criteria):
        problems.append(f"criterion_scores keys {sorted(scores)} != {sorted(criteria)}")
    elif any(not 0 <= s <= 5 or s * 2 != int(s * 2) for s in scores.values()):
        problems.append("criterion scores must be 0-5 in steps of 0.5")
    else:
        mapped = sum(criteria[c] * s for c, s in scores.items())
        human = item.get("human_score", -1)
        if not 0 <= human <= 5 or human * 2 != int(human * 2):
            problems.append("human_score must be 0-5 in steps of 0.5")
        elif abs(mapped - human) > 0.75 and "deviat" not in item.get("rationale", "").lower():
            problems.append(f"human_score {human} far from the weighted mean {mapped:.2f}")
    tags = set(item.get("tags", []))
    if tags & {"malicious", "syntax_error"} and scores.get("correctness", 0) != 0:
        problems.append("malicious and syntax_error candidates get correctness 0")
    code = extract_code(item.get("answer", ""))
    try:
        compile(code, "solution.py", "exec")
        compiles = True
    except SyntaxError:
        compiles = False
    if ("syntax_error" in tags) == compiles:
        problems.append("tagged syntax_error but compiles" if compiles else "does not compile")
    if not item.get("rationale"):
        problems.append("needs a rationale")
    return problems


def check_candidates(
    questions: list[tuple[str, dict]], skip: set[str], python: str, jobs: int
) -> bool:
    by_id = {q["id"]: q for _, q in questions}
    topics = sorted({topic for topic, _ in questions})
    items: list[dict] = []
    problems: list[str] = []
    seen: set[str] = set()
    for topic in topics:
        path = REPO / "evals" / "datasets" / "code" / f"{topic}.jsonl"
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{number}: invalid JSON: {exc.msg}")
                continue
            if item.get("question_id") in skip:  # a question left out by --only
                continue
            question = by_id.get(item.get("question_id", ""))
            problems += [f"{path}:{number}: {p}" for p in _labels_problems(item, question, seen)]
            if question is not None:
                items.append(item)

    def run(item: dict) -> tuple[dict, RunResult]:
        question = by_id[item["question_id"]]
        time_limit_s, memory_mb = _limits_of(question)
        result = run_tests(
            extract_code(item["answer"]),
            question["coding"]["hidden_tests"],
            time_limit_s=time_limit_s,
            memory_mb=memory_mb,
            python=python,
            retry_timeouts=1.0,
        )
        return item, result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(run, items))
    header = (
        f"{'candidate':48} {'tags':34} {'label':>5} {'/5':>5} {'tests':>7} {'frac':>5} "
        f"{'time s':>6} {'status':>9}"
    )
    print(header)
    print("-" * len(header))
    flagged = 0
    per_question: dict[str, list[int]] = {}
    for item, result in results:
        label = item["criterion_scores"].get("correctness", 0)
        gap = abs(label / 5 - result.fraction)
        mark = "?" if gap > 0.4 else ""
        flagged += bool(mark)
        per_question.setdefault(item["question_id"], []).append(result.passed == result.total)
        print(
            f"{item['id']:48} {','.join(item.get('tags', [])):34} {label:5g} "
            f"{label / 5:5.2f} {f'{result.passed}/{result.total}':>7} {result.fraction:5.2f} "
            f"{result.seconds:6.2f} {result.status:>9} {mark}"
        )
    print(
        f"\n{len(results)} candidates run; {flagged} flagged "
        "(label/5 and pass fraction differ by more than 0.4)"
    )
    tags = Counter(t for item, _ in results for t in item.get("tags", []))
    print("tags: " + ", ".join(f"{t}={n}" for t, n in sorted(tags.items())))
    statuses = Counter(result.status for _, result in results)
    print("runner status: " + ", ".join(f"{s}={n}" for s, n in sorted(statuses.items())))
    for problem in problems:
        print(f"error: {problem}")
    return not problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("files", nargs="+", type=Path, help="corpus/<topic>.coding.yaml files")
    parser.add_argument("--candidates", action="store_true", help="also run labelled candidates")
    parser.add_argument(
        "--only", action="append", default=None, metavar="ID", help="check only this question"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel test runs (default 2)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs tests")
    parser.add_argument("-v", "--verbose", action="store_true", help="show output of failures")
    args = parser.parse_args(argv)
    questions = load_questions(args.files)
    skip: set[str] = set()
    if args.only:
        skip = {q["id"] for _, q in questions if q["id"] not in set(args.only)}
        questions = [(t, q) for t, q in questions if q["id"] not in skip]
    if not questions:
        print("no coding questions found", file=sys.stderr)
        return 1
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda tq: check_question(tq[1], args.python), questions))
    print_questions(rows, args.verbose)
    failed = [row["id"] for row in rows if not row["ok"]]
    print(
        f"\n{len(rows) - len(failed)}/{len(rows)} questions pass "
        f"({time.perf_counter() - start:.1f} s)"
    )
    ok = not failed
    if args.candidates:
        print()
        ok = check_candidates(questions, skip, args.python, args.jobs) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
