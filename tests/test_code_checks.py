"""The corpus check runs the corpus's code, and ``interviewer code run`` grades a file.

Both go through the sandbox; a small corpus written here holds model answers with every
kind of fence and two coding questions (one sound, one whose reference solution is wrong).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import main
from app.config import REPO_DIR, get_settings
from app.corpus import Corpus, load_corpus
from app.corpus.verify import answer_blocks, parse_info, verify_code
from app.sandbox import EXECUTORS
from app.sandbox.base import Availability, RunRequest, RunResult

FILLER = (
    "This paragraph is here so the model answer meets the length rule for the corpus. " * 12
).strip()

GOOD_ANSWER = f"""{FILLER}

```python
x = 40
```

The next block checks its printed output:

```pycon
>>> x + 2
42
>>> print("a" * 3)
aaa
```

```python min=3.99
raise SystemExit("never runs on this Python")
```

```python skip: needs a GPU
import torch
```

```text
not code at all
```
"""

BAD_ANSWER = f"""{FILLER}

```python
def f():
    return 1
```

```python
y = f()
assert y == 2, "f() is not 2"
```
"""

BAD_PYCON = f"""{FILLER}

```pycon
>>> sorted({{3, 1, 2}})
[3, 2, 1]
```
"""

CODING = {
    "starter": "def add(a, b):\n    raise NotImplementedError\n",
    "solution": "def add(a, b):\n    return a + b\n",
    "visible_tests": "from solution import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n",
    "hidden_tests": (
        "import pytest\n\nfrom solution import add\n\n\n"
        "@pytest.mark.parametrize('a', [0, 1, 2])\n"
        "def test_many(a):\n    assert add(a, a) == 2 * a\n\n\n"
        "def test_negative():\n    assert add(-1, -1) == -2\n"
    ),
    "time_limit_s": 5,
    "memory_mb": 256,
}


class _Literal(yaml.SafeDumper):
    pass


_Literal.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def _question(corpus: Corpus, question_id: str, new_id: str, answer: str) -> dict[str, Any]:
    data = corpus.get(question_id).model_dump(mode="json", exclude_none=True)
    data.pop("topic")
    data["id"] = new_id
    data["model_answer"] = answer
    data["follow_ups"] = [
        {"question": "Why?", "key_points": ["one reason", "another reason"], "probes": "why"}
    ]
    return data


def _coding(corpus: Corpus, new_id: str, **changes: object) -> dict[str, Any]:
    data = _question(corpus, "asyncio-cancellation-semantics", new_id, GOOD_ANSWER.split("```")[0])
    data["kind"] = "coding"
    data["rubric"]["criteria"][0]["id"] = "correctness"
    for follow_up in data["follow_ups"]:
        follow_up.pop("targets", None)
    data["coding"] = {**CODING, **changes}
    data["question"] = "Write add(a, b)."
    return data


@pytest.fixture
def small_corpus(tmp_path: Path, corpus: Corpus) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(REPO_DIR / "corpus" / "topics.yaml", folder / "topics.yaml")
    questions = [
        _question(corpus, "asyncio-vector-db-client", "code-good-answer", GOOD_ANSWER),
        _question(corpus, "asyncio-vector-db-client", "code-bad-answer", BAD_ANSWER),
        _question(corpus, "asyncio-vector-db-client", "code-bad-pycon", BAD_PYCON),
        _coding(corpus, "code-add"),
        _coding(
            corpus,
            "code-add-wrong",
            solution="def add(a, b):\n    return abs(a) + abs(b)\n",
            starter="def add(a, b):\n    return a + b\n",
        ),
    ]
    (folder / "asyncio.yaml").write_text(
        yaml.dump({"topic": "asyncio", "questions": questions}, Dumper=_Literal, sort_keys=False),
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def sandbox() -> None:
    availability = EXECUTORS["bubblewrap"]().available()
    if not availability.ok:
        pytest.skip(f"no sandbox here: {availability.reason}")


@pytest.fixture
def use_corpus(monkeypatch: pytest.MonkeyPatch, small_corpus: Path) -> Iterator[Path]:
    monkeypatch.setenv("INTERVIEWER_CORPUS_DIR", str(small_corpus))
    get_settings.cache_clear()
    yield small_corpus
    get_settings.cache_clear()


def _line_of(path: Path, needle: str, after: int = 0) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# -- fences -----------------------------------------------------------------------------------


def test_fence_rules() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert parse_info("python") == ("python", None)
    assert parse_info("pycon") == ("pycon", None)
    assert parse_info("python min=3.8") == ("python", None)
    assert parse_info("python min=3.99") == ("python", f"needs Python 3.99 (this is {here})")
    assert parse_info("python skip: needs a CUDA device") == ("python", "needs a CUDA device")
    assert parse_info("text") == (None, None) and parse_info("") == (None, None)
    assert parse_info("python fast") == ("python", "unknown fence option 'fast'")


def test_answer_blocks_keep_order_and_position() -> None:
    blocks = answer_blocks(GOOD_ANSWER)
    assert [(b.index, b.kind, b.skip is None) for b in blocks] == [
        (1, "python", True),
        (2, "pycon", True),
        (3, "python", False),
        (4, "python", False),
    ]
    lines = GOOD_ANSWER.splitlines()
    assert all(
        lines[b.offset].startswith("```python") or lines[b.offset] == "```pycon" for b in blocks
    )
    assert blocks[0].source == "x = 40\n"


# -- the corpus check -------------------------------------------------------------------------


def test_corpus_code_check_finds_every_failure_with_its_line(
    sandbox: None, small_corpus: Path
) -> None:
    corpus = load_corpus(small_corpus)
    check = asyncio.run(verify_code(corpus, small_corpus))
    path = small_corpus / "asyncio.yaml"
    found = {(issue.line, issue.message.split(":")[0]) for issue in check.issues}
    bad_assert = _line_of(path, 'assert y == 2, "f() is not 2"')
    bad_pycon = _line_of(path, ">>> sorted({3, 1, 2})")
    wrong = _line_of(path, "solution: |", after=_line_of(path, "id: code-add-wrong"))
    starter = _line_of(path, "starter: |", after=_line_of(path, "id: code-add-wrong"))
    assert found == {
        (bad_assert, "question 'code-bad-answer'"),
        (bad_pycon, "question 'code-bad-pycon'"),
        (wrong, "question 'code-add-wrong'"),
        (starter, "question 'code-add-wrong'"),
    }, check.issues
    messages = {issue.line: issue.message for issue in check.issues}
    assert "code block 2 (```python) AssertionError: f() is not 2" in messages[bad_assert]
    assert "code block 1 (```pycon) expected '[3, 2, 1]', got '[1, 2, 3]'" in messages[bad_pycon]
    assert "does not pass the hidden tests: failed (2/2)" not in messages[wrong]
    assert "hidden tests: failed (1/2)" in messages[wrong] and "test_negative" in messages[wrong]
    assert any(
        i.line == starter and "starter passes every hidden test" in i.message for i in check.issues
    )
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert check.summary() == (
        f"code: 5 blocks run, 2 skipped (marked skip: 1, needs Python 3.99 (this is {here}): 1), "
        "1 coding questions verified; 4 problem(s)"
    )


def test_corpus_check_command_runs_code_unless_told_not_to(
    sandbox: None, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["corpus", "check", "--corpus-dir", str(small_corpus), "--allow-low-coverage"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "code: 5 blocks run, 2 skipped" in captured.out
    assert f"{small_corpus / 'asyncio.yaml'}:" in captured.err
    assert "corpus check failed: 4 code problem(s)" in captured.err
    assert main([*args, "--no-run"]) == 0
    assert "blocks run" not in capsys.readouterr().out


class _Unavailable:
    name = "unavailable-for-tests"

    def available(self) -> Availability:
        return Availability(ok=False, reason="bubblewrap is not installed: apt install bubblewrap")

    async def run(self, request: RunRequest) -> RunResult:
        raise AssertionError("never asked to run")


def test_unavailable_sandbox_is_said_and_fails_only_in_ci(
    small_corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(EXECUTORS, _Unavailable.name, _Unavailable)
    monkeypatch.setenv("INTERVIEWER_CODE_EXECUTOR", _Unavailable.name)
    get_settings.cache_clear()
    try:
        args = ["corpus", "check", "--corpus-dir", str(small_corpus), "--allow-low-coverage"]
        monkeypatch.delenv("CI", raising=False)
        assert main(args) == 0
        captured = capsys.readouterr()
        assert "code: not run: bubblewrap is not installed" in captured.out
        assert "were not checked" in captured.err
        monkeypatch.setenv("CI", "true")
        assert main(args) == 1
        assert "must run in CI" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


# -- interviewer code run ---------------------------------------------------------------------


def test_code_run_json_for_a_passing_file(
    sandbox: None, use_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solution = tmp_path / "mine.py"
    solution.write_text(CODING["solution"])  # type: ignore[arg-type]
    assert main(["code", "run", "code-add", str(solution), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"status", "passed", "total", "correctness", "tests", "duration_s"}
    assert (report["status"], report["passed"], report["total"]) == ("passed", 2, 2)
    assert report["correctness"] == 1.0
    assert report["tests"] == [
        {"name": "test_many", "passed": True, "message": ""},
        {"name": "test_negative", "passed": True, "message": ""},
    ]
    assert main(["code", "run", "code-add", str(solution), "--visible", "--json"]) == 0
    visible = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in visible["tests"]] == ["test_small"]


def test_code_run_explains_a_failing_file(
    sandbox: None, use_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solution = tmp_path / "mine.py"
    solution.write_text("def add(a, b):\n    return a * b\n")
    assert main(["code", "run", "code-add", str(solution), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "failed" and report["reason"] == "2 of 2 tests failed"
    assert report["correctness"] == 0.0
    assert report["tests"][1]["message"].startswith("assert 1 == -2")
    assert main(["code", "run", "code-add", str(solution)]) == 1
    text = capsys.readouterr().out
    assert "code-add: hidden tests failed, 0/2 (correctness 0.00)" in text
    assert "  FAIL test_negative: assert 1 == -2" in text


@pytest.mark.parametrize(
    ("question", "content", "message"),
    [
        ("no-such-question", b"x = 1\n", "no question with id 'no-such-question'"),
        ("code-good-answer", b"x = 1\n", "'code-good-answer' is not a coding question"),
        ("code-add", b"def add(a, b):\n    return a + b  # \xff\n", "is not UTF-8 text"),
        ("code-add", None, "cannot read"),
    ],
)
def test_code_run_bad_input_is_one_line_and_exit_2(
    use_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    question: str,
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "input.py"
    if content is not None:
        path.write_bytes(content)
    assert main(["code", "run", question, str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
