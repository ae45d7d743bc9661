"""Run the corpus's code, as ``interviewer corpus check`` does (``--no-run`` skips it).

Two checks, both through the sandbox (:mod:`app.sandbox`), the one way code runs here:

* **Model-answer code blocks** run per the fence rules in ``corpus/README.md``: ```python
  blocks are executed and ```pycon blocks checked with doctest, the blocks of one answer in
  order in one namespace; ```python min=3.14 is skipped below 3.14 with that reason;
  ```python skip: <reason> never runs. Each block has 10 s.
* **Coding questions**: the reference solution passes every hidden and every visible
  test, and the starter fails at least one hidden test.

Failures are :class:`~app.corpus.loader.CorpusIssue` objects pointing at the file and line
of the block (of the failing line inside it, where known) or of the ``coding`` field.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from app.corpus.loader import TOPICS_FILE, CorpusIssue
from app.corpus.models import Corpus, Question
from app.sandbox import CodeExecutor, Limits, RunRequest, get_executor
from app.sandbox.testrun import TestRunReport, TestRunStatus, run_coding_tests

BLOCK_TIMEOUT_S = 10.0  # per block, as corpus/README.md promises
DRIVER_PATH = Path(__file__).resolve().parent / "answer_driver.py"
FENCE = re.compile(r"^```[ \t]*([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
MIN_VERSION = re.compile(r"^min=(\d+)\.(\d+)$")
RUNNABLE = {"python", "pycon"}
T = TypeVar("T")


@dataclass(frozen=True)
class Block:
    """One fenced block of a model answer that the check knows how to treat."""

    index: int  # 1-based, among the answer's python and pycon blocks
    kind: str  # "python" or "pycon"
    source: str
    offset: int  # 0-based line of the fence inside the answer text
    skip: str | None = None  # why it does not run here, if it does not


def parse_info(info: str) -> tuple[str | None, str | None]:
    """A fence's info string -> (kind, skip reason); kind None means "not run at all"."""
    words = info.strip().split(None, 1)
    if not words or words[0] not in RUNNABLE:
        return None, None
    rest = words[1].strip() if len(words) > 1 else ""
    if not rest:
        return words[0], None
    if rest.startswith("skip:"):
        return words[0], rest[len("skip:") :].strip() or "marked skip"
    version = MIN_VERSION.match(rest)
    if version:
        wanted = (int(version.group(1)), int(version.group(2)))
        if sys.version_info[:2] < wanted:
            here = f"{sys.version_info.major}.{sys.version_info.minor}"
            return words[0], f"needs Python {wanted[0]}.{wanted[1]} (this is {here})"
        return words[0], None
    return words[0], f"unknown fence option {rest!r}"


def answer_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        kind, skip = parse_info(match.group(1))
        if kind is None:
            continue
        offset = text.count("\n", 0, match.start())
        blocks.append(Block(len(blocks) + 1, kind, match.group(2), offset, skip))
    return blocks


@dataclass(frozen=True)
class _Where:
    path: Path
    line: int  # the question's own line
    answer_line: int  # 1-based file line of the answer text's first line
    answer_exact: bool  # False when the answer is not a literal block (lines are approximate)
    fields: dict[str, int]  # coding field -> its line


def _locate(folders: Sequence[Path]) -> dict[str, _Where]:
    """Where each question's answer and coding fields sit in its file (first folder wins)."""
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, _Where] = {}
    paths = [p for d in folders for p in sorted(d.glob("*.yaml")) if p.name != TOPICS_FILE]
    for path in paths:
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the loader has reported it
        if not isinstance(root, yaml.MappingNode):
            continue
        questions = next((v for k, v in root.value if k.value == "questions"), None)
        if not isinstance(questions, yaml.SequenceNode):
            continue
        for node in questions.value:
            if not isinstance(node, yaml.MappingNode):
                continue
            keys = {k.value: (k, v) for k, v in node.value}
            if "id" not in keys:
                continue
            answer_line, exact = node.start_mark.line + 1, False
            if "model_answer" in keys:
                key, value = keys["model_answer"]
                exact = value.style == "|"
                answer_line = value.start_mark.line + 2 if exact else key.start_mark.line + 1
            fields: dict[str, int] = {}
            if "coding" in keys:
                key, value = keys["coding"]
                fields["coding"] = key.start_mark.line + 1
                if isinstance(value, yaml.MappingNode):
                    for k, _ in value.value:
                        fields[str(k.value)] = k.start_mark.line + 1
            found.setdefault(
                str(keys["id"][1].value),
                _Where(path, node.start_mark.line + 1, answer_line, exact, fields),
            )
    return found


@dataclass
class CodeCheck:
    """What the code check found; ``summary()`` is the line the corpus check prints."""

    issues: list[CorpusIssue] = field(default_factory=list)
    blocks_run: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    coding_verified: int = 0
    coding_total: int = 0
    unavailable: str | None = None

    def summary(self) -> str:
        if self.unavailable is not None:
            return f"code: not run: {self.unavailable}"
        total = sum(self.skipped.values())
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        text = f"code: {self.blocks_run} blocks run, {total} skipped"
        if reasons:
            text += f" ({reasons})"
        text += f", {self.coding_verified} coding questions verified"
        if self.issues:
            text += f"; {len(self.issues)} problem(s)"
        return text


def _skip_label(reason: str) -> str:
    """Version skips are grouped by version; every explicit ``skip:`` reason counts as one."""
    return reason if reason.startswith(("needs Python", "unknown fence")) else "marked skip"


async def _bounded(limit: asyncio.Semaphore, work: Awaitable[T]) -> T:
    async with limit:
        return await work


async def _check_answer(
    executor: CodeExecutor, question: Question, where: _Where | None, check: CodeCheck
) -> None:
    blocks = answer_blocks(question.model_answer)
    runnable = [b for b in blocks if b.skip is None]
    for block in blocks:
        if block.skip is not None:
            check.skipped[_skip_label(block.skip)] += 1
            if block.skip.startswith("unknown fence"):
                check.issues.append(_issue(where, question, block, None, block.skip))
    if not runnable:
        return
    names = {b.index: f"<{question.id} block {b.index}>" for b in runnable}
    payload = {
        "timeout_s": BLOCK_TIMEOUT_S,
        "blocks": [{"kind": b.kind, "source": b.source, "name": names[b.index]} for b in runnable],
    }
    wall = BLOCK_TIMEOUT_S * len(runnable) + 10
    request = RunRequest(
        files={"_answer.py": DRIVER_PATH.read_text(encoding="utf-8")},
        readonly=frozenset({"_answer.py"}),
        argv=["python", "_answer.py"],
        stdin=json.dumps(payload).encode(),
        result_channel=True,
        limits=Limits(
            wall_s=wall, cpu_s=int(wall) + 1, memory_mb=2048, file_mb=64, nproc=128, nofile=1024
        ),
    )
    result = await executor.run(request)
    records = []
    for line in result.channel.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    done = {r["index"]: r for r in records if isinstance(r, dict) and "index" in r}
    for position, block in enumerate(runnable):
        record = done.get(position)
        if record is None:
            detail = result.reason or "it ended before this block ran"
            tail = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else []
            message = f"did not run to the end ({detail}){': ' + tail[0] if tail else ''}"
            check.blocks_run += 1
            check.issues.append(_issue(where, question, block, None, message))
            break
        check.blocks_run += 1
        if not record.get("ok"):
            inner = record.get("line")
            check.issues.append(
                _issue(
                    where,
                    question,
                    block,
                    inner if isinstance(inner, int) else None,
                    str(record.get("error", "failed")),
                )
            )
            break


def _issue(
    where: _Where | None, question: Question, block: Block, inner_line: int | None, message: str
) -> CorpusIssue:
    fence = f"```{block.kind}"
    text = f"question {question.id!r}: model answer code block {block.index} ({fence}) {message}"
    if where is None:
        return CorpusIssue(Path(question.topic + ".yaml"), 1, text)
    line = where.answer_line + block.offset + (inner_line or 0)
    if not where.answer_exact:
        text += " (the model answer is not a literal block, so the line is approximate)"
    return CorpusIssue(where.path, line, text)


def _describe(report: TestRunReport) -> str:
    failing = [t.name for t in report.tests if not t.passed][:5]
    text = f"{report.status.value} ({report.passed}/{report.total})"
    if report.reason:
        text += f": {report.reason}"
    if failing and report.status == TestRunStatus.FAILED:
        text += f"; failing: {', '.join(failing)}"
    return text


async def _check_coding(
    executor: CodeExecutor,
    question: Question,
    where: _Where | None,
    check: CodeCheck,
    limit: asyncio.Semaphore,
) -> None:
    spec = question.coding
    assert spec is not None
    hidden, visible, starter = await asyncio.gather(
        _bounded(limit, run_coding_tests(spec, spec.solution, executor=executor)),
        _bounded(limit, run_coding_tests(spec, spec.solution, visible=True, executor=executor)),
        _bounded(limit, run_coding_tests(spec, spec.starter, executor=executor)),
    )

    def at(name: str) -> tuple[Path, int]:
        if where is None:
            return Path(question.topic + ".yaml"), 1
        return where.path, where.fields.get(name, where.fields.get("coding", where.line))

    problems = []
    if hidden.status != TestRunStatus.PASSED:
        problems.append(
            (
                *at("solution"),
                f"the reference solution does not pass the hidden tests: {_describe(hidden)}",
            )
        )
    if visible.status != TestRunStatus.PASSED:
        problems.append(
            (
                *at("solution"),
                f"the reference solution does not pass the visible tests: {_describe(visible)}",
            )
        )
    if starter.status == TestRunStatus.PASSED:
        problems.append(
            (*at("starter"), "the starter passes every hidden test; they must fail on it")
        )
    for path, line, message in problems:
        check.issues.append(CorpusIssue(path, line, f"question {question.id!r}: {message}"))
    if not problems:
        check.coding_verified += 1


async def verify_code(
    corpus: Corpus,
    folders: Path | Sequence[Path],
    executor: CodeExecutor | None = None,
    concurrency: int | None = None,
) -> CodeCheck:
    """Run every model-answer block and verify every coding question (see the module doc).

    ``folders`` are where the corpus's files are (the built-in folder, then any others), so
    problems can be reported at their file and line.
    """
    executor = executor or get_executor()
    check = CodeCheck()
    availability = await asyncio.to_thread(executor.available)
    if not availability.ok:
        check.unavailable = availability.reason
        return check
    where = _locate([folders] if isinstance(folders, Path) else list(folders))
    limit = asyncio.Semaphore(concurrency or max(2, os.cpu_count() or 2))
    jobs: list[Awaitable[None]] = []
    for question in corpus.questions.values():
        jobs.append(
            _bounded(limit, _check_answer(executor, question, where.get(question.id), check))
        )
        if question.coding is not None:
            check.coding_total += 1
            jobs.append(_check_coding(executor, question, where.get(question.id), check, limit))
    await asyncio.gather(*jobs)
    check.issues.sort()
    return check
