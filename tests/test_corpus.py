"""The corpus: the real one validates and meets coverage; broken files say file:line: what."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import main
from app.config import REPO_DIR
from app.corpus import Corpus, Role, check_corpus
from app.corpus.coverage import (
    MIN_PER_LEVEL,
    MIN_PER_ROLE,
    MIN_PER_TOPIC,
    MIN_QUESTIONS,
    coverage,
)
from app.corpus.models import MODEL_ANSWER_WORDS
from app.text import word_count


def test_real_corpus_validates_with_coverage_minimums(corpus: Corpus) -> None:
    cov = coverage(corpus)
    assert cov.ok, cov.shortfalls
    assert cov.total >= MIN_QUESTIONS >= 320
    assert min(cov.by_topic[t] for t in corpus.topics) >= MIN_PER_TOPIC >= 10
    assert min(cov.by_role[r] for r in Role) >= MIN_PER_ROLE >= 80
    for topic in corpus.topics:
        for level, needed in MIN_PER_LEVEL.items():
            assert cov.by_topic_difficulty[(topic, level)] >= needed >= 1, (topic, level)
    assert MIN_PER_LEVEL[1] >= 2 and MIN_PER_LEVEL[2] >= 2
    assert cov.article_examples == 6


def test_every_question_states_sources_and_python_versions(corpus: Corpus) -> None:
    for question in corpus.questions.values():
        assert question.sources and all(s.startswith("https://") for s in question.sources)
        assert question.python, question.id


def test_coverage_needs_every_level_in_every_topic(corpus: Corpus) -> None:
    """A topic missing level 5, or with one question at level 1, is a shortfall."""
    asyncio = corpus.by_topic("asyncio")
    kept = [q for q in asyncio if q.difficulty != 5]
    kept = [q for q in kept if q.difficulty != 1][:12] + [q for q in kept if q.difficulty == 1][:1]
    small = corpus.model_copy(
        update={
            "topics": {"asyncio": corpus.topics["asyncio"]},
            "questions": {q.id: q for q in kept},
        }
    )
    shortfalls = coverage(small).shortfalls
    levels = [s for s in shortfalls if "levels 1/2/3/4/5" in s]
    counts = [sum(q.difficulty == d for q in kept) for d in range(1, 6)]
    assert levels == [
        f"topic asyncio: {'/'.join(map(str, counts))} questions at levels 1/2/3/4/5; "
        "at least 2/2/1/1/1 needed"
    ]
    assert counts[0] == 1 and counts[4] == 0


def test_every_question_meets_the_content_rules(corpus: Corpus) -> None:
    low, high = MODEL_ANSWER_WORDS
    for question in corpus.questions.values():
        assert low <= word_count(question.model_answer) <= high, question.id
        assert 3 <= len(question.rubric.criteria) <= 6, question.id
        assert abs(sum(c.weight for c in question.rubric.criteria) - 1) < 1e-3, question.id
        assert question.misconceptions and 1 <= len(question.follow_ups) <= 3, question.id
        assert set(question.rubric.levels) == set(range(6)), question.id


def test_article_examples_are_the_six_table_questions(corpus: Corpus) -> None:
    article = {q.topic for q in corpus.questions.values() if q.source == "article"}
    assert article == {
        "asyncio",
        "context_managers",
        "data_structures",
        "exceptions",
        "memory",
        "concurrency",
    }


def test_corpus_check_command_prints_coverage_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "check"]) == 0
    out = capsys.readouterr().out
    assert "topic" in out and "ml_eng" in out and "corpus OK" in out
    assert "difficulty: 1:" in out
    header = next(line for line in out.splitlines() if line.startswith("topic"))
    assert header.split()[-5:] == ["L1", "L2", "L3", "L4", "L5"]
    row = next(line for line in out.splitlines() if line.startswith("asyncio "))
    levels = [int(n) for n in row.split()[-5:]]
    assert sum(levels) == int(row.split()[-6]) and min(levels) >= 1


# -- broken files ------------------------------------------------------------------------
def _question(corpus: Corpus, question_id: str) -> dict[str, Any]:
    data = corpus.get(question_id).model_dump(mode="json", exclude_none=True)
    data.pop("topic")
    return data


def _write(folder: Path, questions: list[dict[str, Any]], topic: str = "asyncio") -> Path:
    folder.mkdir(exist_ok=True)
    shutil.copy(REPO_DIR / "corpus" / "topics.yaml", folder / "topics.yaml")
    path = folder / f"{topic}.yaml"
    path.write_text(yaml.safe_dump({"topic": topic, "questions": questions}, sort_keys=False))
    return path


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def valid_pair(corpus: Corpus) -> list[dict[str, Any]]:
    """Two real questions that only refer to each other (inline follow-ups otherwise)."""
    first = _question(corpus, "asyncio-vector-db-client")
    second = _question(corpus, "asyncio-cancellation-semantics")
    first["follow_ups"] = [f for f in first["follow_ups"] if f.get("ref") in (None, second["id"])]
    second["follow_ups"] = [f for f in second["follow_ups"] if "ref" not in f][:1] or [
        {"question": "Why re-raise?", "key_points": ["a", "b"], "probes": "re-raise"}
    ]
    return [first, second]


def test_a_valid_small_corpus_passes(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    _write(tmp_path, valid_pair)
    corpus, issues = check_corpus(tmp_path)
    assert issues == []
    assert corpus is not None and len(corpus.questions) == 2


def test_bad_yaml_names_file_and_line(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    path = _write(tmp_path, valid_pair)
    lines = path.read_text().splitlines()
    lines.insert(5, "    broken: [unclosed")
    path.write_text("\n".join(lines) + "\n")
    _, issues = check_corpus(tmp_path)
    assert len(issues) == 1
    assert issues[0].path == path
    assert issues[0].line == 6
    assert "invalid YAML" in issues[0].message
    assert str(issues[0]).startswith(f"{path}:{issues[0].line}: ")


def test_unknown_field_points_at_the_key(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    valid_pair[1]["colour"] = "blue"
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    unknown, follow_up = sorted(issues, key=lambda i: "follow-up" in i.message)
    assert unknown.line == _line_of(path, "colour: blue")
    assert "unknown field 'questions[1].colour'" in unknown.message
    assert "asyncio-cancellation-semantics" in unknown.message
    # the other question's follow-up into the invalid one says so, once
    assert "refers to 'asyncio-cancellation-semantics', which has errors" in follow_up.message


@pytest.mark.parametrize("field", ["sources", "python"])
def test_sources_and_python_are_required(
    tmp_path: Path, valid_pair: list[dict[str, Any]], field: str
) -> None:
    del valid_pair[1][field]
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    missing = [i for i in issues if f".{field}: Field required" in i.message]
    assert len(missing) == 1
    assert missing[0].path == path
    assert missing[0].line == _line_of(path, "- id: asyncio-cancellation-semantics")


def test_sources_need_at_least_one_url(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    valid_pair[0]["sources"] = []
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    assert any(
        "sources: List should have at least 1 item" in i.message
        and i.line == _line_of(path, "sources: []")
        for i in issues
    ), issues


def test_missing_rubric_is_reported(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    del valid_pair[0]["rubric"]
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    assert any("rubric" in i.message and "Field required" in i.message for i in issues)
    assert all(i.path == path for i in issues)


def test_duplicate_id_across_files(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    _write(tmp_path, valid_pair)
    copy = dict(valid_pair[1])
    copy["follow_ups"] = [{"question": "Q?", "key_points": ["a", "b"], "probes": "p"}]
    other = _write(tmp_path, [copy], topic="exceptions")
    _, issues = check_corpus(tmp_path)
    duplicate = [i for i in issues if "duplicate question id" in i.message]
    assert len(duplicate) == 1
    assert duplicate[0].line == _line_of(other, "id: asyncio-cancellation-semantics")
    assert "first defined at" in duplicate[0].message


def test_follow_up_to_a_missing_question(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    valid_pair[0]["follow_ups"].append({"ref": "no-such-question", "probes": "p", "targets": []})
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    assert [i.line for i in issues] == [_line_of(path, "ref: no-such-question")]
    assert "missing question 'no-such-question'" in issues[0].message


def test_weights_not_summing_to_one(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    valid_pair[0]["rubric"]["criteria"][0]["weight"] = 0.9
    path = _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    assert len(issues) == 1
    assert "weights must sum to 1.0" in issues[0].message
    assert issues[0].line == _line_of(path, "rubric:")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    path = _write(tmp_path, valid_pair)
    text = path.read_text().replace("  difficulty: 4\n", "  difficulty: 4\n  difficulty: 2\n", 1)
    path.write_text(text)
    _, issues = check_corpus(tmp_path)
    assert any("duplicate key 'difficulty'" in i.message for i in issues)


def test_code_outside_a_code_block_is_an_error(
    tmp_path: Path, valid_pair: list[dict[str, Any]]
) -> None:
    """Markdown would join the lines of unfenced code into one paragraph in the chat."""
    code = "def f(path):\n    try:\n        return g(path)\n    finally:\n        return None"
    valid_pair[0]["question"] = "What does this return?\n\n" + code
    valid_pair[1]["question"] = "And this one?\n\n```python\n" + code + "\n```"
    _write(tmp_path, valid_pair)
    _, issues = check_corpus(tmp_path)
    assert len(issues) == 1
    assert "code outside a code block ('def f(path):')" in issues[0].message


def test_model_answer_length_and_topic_name(
    tmp_path: Path, valid_pair: list[dict[str, Any]]
) -> None:
    valid_pair[0]["model_answer"] = "Too short."
    path = _write(tmp_path, valid_pair)
    path.rename(tmp_path / "misnamed.yaml")
    _, issues = check_corpus(tmp_path)
    messages = " ".join(i.message for i in issues)
    assert "must match file name 'misnamed.yaml'" in messages
    assert "model_answer has 2 words" in messages


def test_a_topic_may_span_files(tmp_path: Path, valid_pair: list[dict[str, Any]]) -> None:
    """``asyncio.coding.yaml`` holds more asyncio questions; ``asynciox.yaml`` is no topic."""
    path = _write(tmp_path, valid_pair[:1])
    second = tmp_path / "asyncio.coding.yaml"
    second.write_text(
        yaml.safe_dump({"topic": "asyncio", "questions": valid_pair[1:]}), encoding="utf-8"
    )
    corpus, issues = check_corpus(tmp_path)
    assert issues == []
    assert corpus is not None and len(corpus.by_topic("asyncio")) == 2
    path.rename(tmp_path / "asynciox.yaml")
    _, issues = check_corpus(tmp_path)
    assert any("must match file name 'asynciox.yaml'" in i.message for i in issues)


def test_check_command_fails_with_file_line_on_stderr(
    tmp_path: Path, valid_pair: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    valid_pair[0]["kind"] = "essay"
    path = _write(tmp_path, valid_pair)
    code = main(["corpus", "check", "--corpus-dir", str(tmp_path), "--allow-low-coverage"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{path}:{_line_of(path, 'kind: essay')}: " in err
    assert "corpus check failed: 1 problem(s)" in err


def test_low_coverage_fails_unless_allowed(
    tmp_path: Path, valid_pair: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, valid_pair)
    assert main(["corpus", "check", "--corpus-dir", str(tmp_path)]) == 1
    assert "coverage:" in capsys.readouterr().err
    assert main(["corpus", "check", "--corpus-dir", str(tmp_path), "--allow-low-coverage"]) == 0


def test_one_broken_question_does_not_hide_its_file(tmp_path: Path) -> None:
    """A question with an error is reported and skipped; the rest of its file still loads,
    so follow-ups into it from elsewhere resolve, and only refs to the broken one are named."""
    shutil.copytree(REPO_DIR / "corpus", tmp_path, dirs_exist_ok=True)
    path = tmp_path / "asyncio.yaml"
    text = path.read_text()
    start = text.index("- id: asyncio-timeouts\n")
    at = text.index("  difficulty: ", start)
    end = text.index("\n", at)
    path.write_text(text[:at] + "  difficulty: 9" + text[end:])
    broken_line = text[:at].count("\n") + 1
    _, issues = check_corpus(tmp_path)
    real = [i for i in issues if "follow-up" not in i.message]
    assert [(i.path, i.line) for i in real] == [(path, broken_line)]
    assert real[0].message.startswith("question 'asyncio-timeouts': ")
    assert "difficulty: Input should be less than or equal to 5" in real[0].message
    follow_ups = [i for i in issues if "follow-up" in i.message]
    assert follow_ups, "llm-flaky-endpoint-retries refers to asyncio-timeouts"
    for issue in follow_ups:
        assert "follow-up refers to 'asyncio-timeouts', which has errors" in issue.message
    referring = {
        q.id
        for q in check_corpus(REPO_DIR / "corpus")[0].questions.values()  # type: ignore[union-attr]
        for f in q.follow_ups
        if f.ref == "asyncio-timeouts"
    }
    assert len(follow_ups) == len(referring)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: x\nnote: one\nbroken key\ntopics: []\n", 3),  # a key without its colon
        ("version: x\ntopics: [\n", 2),  # a flow list never closed
        ('version: x\nnote: "never closed\ntopics: []\n', 2),  # a quote never closed
        ("version: x\ntopics:\n  - a\n - b\n", 4),  # bad indentation
    ],
)
def test_yaml_errors_point_at_the_line_at_fault(tmp_path: Path, text: str, line: int) -> None:
    (tmp_path / "topics.yaml").write_text(text)
    _, issues = check_corpus(tmp_path)
    yaml_issues = [i for i in issues if "invalid YAML" in i.message]
    assert [i.line for i in yaml_issues] == [line], yaml_issues
