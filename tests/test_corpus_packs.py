"""Question packs: extra corpus folders, merged with the built-in corpus and checked alike.

Every bad input gets one ``file:line: message`` and the valid questions around it still load.
Real files in tmp folders; the built-in corpus is the real one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import _export_packs, main
from app.config import REPO_DIR, Settings, get_settings
from app.corpus import Corpus, CorpusIssue, Role, check_corpus, load_corpus, read_corpus
from app.corpus.loader import MAX_FILE_BYTES, parse_file
from app.corpus.models import MAX_LONG_TEXT_CHARS
from app.retrieval.index import QuestionIndex
from app.retrieval.plan import InterviewSetup
from app.services import build_foundation

from .conftest import make_settings

BUILTIN = REPO_DIR / "corpus"
PACKS_AT_START = os.environ.get("INTERVIEWER_CORPUS_PACKS")


# -- helpers ---------------------------------------------------------------------------------
def pack_question(corpus: Corpus, source_id: str, new_id: str, **changes: Any) -> dict[str, Any]:
    """A real question under a new id, with inline follow-ups only (unless changed)."""
    data = copy.deepcopy(corpus.get(source_id).model_dump(mode="json", exclude_none=True))
    data.pop("topic")
    data["id"] = new_id
    data["follow_ups"] = [
        {
            "question": f"What would you add to {new_id}?",
            "key_points": ["One concrete point.", "Another concrete point."],
            "probes": "Depth beyond the first answer.",
        }
    ]
    data.update(changes)
    return data


def write_topic(folder: Path, topic: str, questions: list[dict[str, Any]], name: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{topic}.yaml")
    # A deep copy per question: PyYAML writes shared objects as anchors and aliases, which
    # corpus files refuse.
    data = {"topic": topic, "questions": copy.deepcopy(questions)}
    # Long lines stay on one line (width), as an author's or a tool's long value would.
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=10**9), encoding="utf-8")
    return path


def write_topics(folder: Path, *topics: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "topics.yaml"
    entries = [{"id": t, "title": f"{t} title", "description": f"What {t} covers."} for t in topics]
    path.write_text(yaml.safe_dump({"topics": entries}, sort_keys=False), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, start: int = 1) -> int:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if number >= start and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def only(issues: list[CorpusIssue], needle: str) -> CorpusIssue:
    found = [i for i in issues if needle in i.message]
    assert len(found) == 1, issues
    return found[0]


@pytest.fixture
def team_pack(tmp_path: Path, corpus: Corpus) -> Path:
    """A pack with a new topic (two questions, one referring to the other and one to the
    built-in corpus) and a question added to the built-in topic asyncio."""
    pack = tmp_path / "team"
    write_topics(pack, "team_billing")
    first = pack_question(corpus, "asyncio-timeouts", "billing-retry-budget")
    second = pack_question(corpus, "exc-async-exception-groups", "billing-partial")
    second["follow_ups"].append({"ref": "billing-retry-budget", "probes": "Retry budgets."})
    second["follow_ups"].append({"ref": "asyncio-timeouts", "probes": "Timeouts."})
    write_topic(pack, "team_billing", [first, second])
    write_topic(pack, "asyncio", [pack_question(corpus, "asyncio-timeouts", "team-asyncio-1")])
    return pack


# -- packs merge with the built-in corpus ------------------------------------------------
def test_a_pack_adds_topics_and_questions(corpus: Corpus, team_pack: Path) -> None:
    merged, issues = check_corpus(BUILTIN, [team_pack])
    assert issues == []
    assert merged is not None
    assert len(merged.questions) == len(corpus.questions) + 3
    assert list(merged.topics)[-1] == "team_billing"  # after the built-in topics
    assert list(merged.topics)[:-1] == list(corpus.topics)
    assert merged.get("team-asyncio-1").topic == "asyncio"
    assert {q.id for q in merged.by_topic("team_billing")} == {
        "billing-retry-budget",
        "billing-partial",
    }
    assert merged.packs == [str(team_pack)] and merged.pack_issues == []
    assert load_corpus(BUILTIN, [team_pack]).questions == merged.questions


def test_the_same_pack_twice_is_read_once(corpus: Corpus, team_pack: Path) -> None:
    merged, issues = check_corpus(BUILTIN, [team_pack, team_pack / ".." / "team"])
    assert issues == [] and merged is not None
    assert len(merged.questions) == len(corpus.questions) + 3


def test_check_path_validates_a_pack_alone(
    team_pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["corpus", "check", str(team_pack)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    assert "pack OK: 3 questions in 2 topics" in out
    assert str(team_pack) in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["asyncio"][-6] == "1" and rows["team_billing"][-6] == "2"
    # a small pack falls short of the built-in minimums: information, not an error
    assert "coverage (information, not required of a pack): 3 questions in all" in out
    assert "topic team_billing: 2 questions; at least 10 needed" in out
    assert "article" not in out  # the seed article's questions are the built-in corpus's rule


def test_check_with_packs_checks_the_merged_corpus(
    corpus: Corpus, team_pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["corpus", "check", "--pack", str(team_pack)]) == 0
    out = capsys.readouterr().out
    total = len(corpus.questions) + 3
    assert f"corpus OK: {total} questions in {len(corpus.topics) + 1} topics" in out
    assert f"1 pack(s): {team_pack}" in out
    assert "coverage (information, not required of a pack): topic team_billing" in out
    # the flag also goes before the command
    assert main(["--pack", str(team_pack), "corpus", "check"]) == 0
    assert f"corpus OK: {total} questions" in capsys.readouterr().out


def test_the_built_in_folder_as_path_is_checked_as_the_corpus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["corpus", "check", str(BUILTIN)]) == 0
    assert "corpus OK: " in capsys.readouterr().out


def test_check_path_reports_pack_errors_with_file_and_line(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "pack"
    path = write_topic(pack, "asyncio", [pack_question(corpus, "asyncio-timeouts", "p-one")])
    path.write_text(path.read_text().replace("difficulty: 3", "difficulty: 7", 1))
    assert main(["corpus", "check", str(pack)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line_of(path, 'difficulty: 7')}: question 'p-one': " in err
    assert "corpus check failed: 1 problem(s)" in err


# -- the setting and the flag ------------------------------------------------------------
def test_packs_setting_takes_a_json_list_or_a_path_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERVIEWER_CORPUS_PACKS", json.dumps(["/srv/a", "~/b"]))
    assert Settings().corpus_packs == [Path("/srv/a"), Path.home() / "b"]
    monkeypatch.setenv("INTERVIEWER_CORPUS_PACKS", f"/srv/a{os.pathsep}/srv/b c")
    assert Settings().corpus_packs == [Path("/srv/a"), Path("/srv/b c")]
    monkeypatch.setenv("INTERVIEWER_CORPUS_PACKS", "")
    assert Settings().corpus_packs == []
    monkeypatch.delenv("INTERVIEWER_CORPUS_PACKS")
    assert Settings().corpus_packs == []


def test_setting_packs_are_loaded_by_corpus_check(
    corpus: Corpus,
    team_pack: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("INTERVIEWER_CORPUS_PACKS", json.dumps([str(team_pack)]))
    get_settings.cache_clear()
    try:
        assert main(["corpus", "check"]) == 0
    finally:
        get_settings.cache_clear()
    assert f"corpus OK: {len(corpus.questions) + 3} questions" in capsys.readouterr().out


def test_app_hands_its_pack_flags_to_the_pages(
    team_pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`interviewer app --pack DIR`: the Streamlit pages read get_settings() in-process."""
    # setenv records the variable's state before the test, which teardown restores (after
    # _export_packs has changed it behind monkeypatch's back)
    monkeypatch.setenv("INTERVIEWER_CORPUS_PACKS", "")
    get_settings.cache_clear()
    try:
        flagged = get_settings().model_copy(update={"corpus_packs": [team_pack]})
        seen = _export_packs(flagged)
        assert get_settings().corpus_packs == [team_pack] == seen.corpus_packs
        assert json.loads(os.environ["INTERVIEWER_CORPUS_PACKS"]) == [str(team_pack)]
    finally:
        get_settings.cache_clear()


# -- cross-pack rules ------------------------------------------------------------------
def test_duplicate_ids_across_packs_name_both_places_and_the_first_wins(
    corpus: Corpus, tmp_path: Path
) -> None:
    first = write_topic(
        tmp_path / "a", "asyncio", [pack_question(corpus, "asyncio-timeouts", "shared-id")]
    )
    second_q = pack_question(corpus, "exc-async-exception-groups", "shared-id")
    keep = pack_question(corpus, "asyncio-timeouts", "b-only")
    second = write_topic(tmp_path / "b", "exceptions", [second_q, keep])
    report = read_corpus(BUILTIN, [tmp_path / "a", tmp_path / "b"])
    issue = only(report.issues, "duplicate question id 'shared-id'")
    assert (issue.path, issue.line) == (second, line_of(second, "id: shared-id"))
    assert f"first defined at {first}:{line_of(first, 'id: shared-id')}" in issue.message
    assert f"in pack {tmp_path / 'a'}" in issue.message and issue.pack == tmp_path / "b"
    assert "the first definition is used" in issue.message
    assert len(report.issues) == 1
    assert report.corpus is not None
    assert report.corpus.get("shared-id").topic == "asyncio"  # pack a's
    assert "b-only" in report.corpus.questions


def test_a_pack_cannot_redefine_a_built_in_question(corpus: Corpus, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    taken = pack_question(corpus, "exc-async-exception-groups", "asyncio-timeouts")
    path = write_topic(pack, "asyncio", [taken])
    loaded = load_corpus(BUILTIN, [pack])
    assert loaded.get("asyncio-timeouts") == corpus.get("asyncio-timeouts")  # built-in wins
    [problem] = loaded.pack_issues
    builtin_file = BUILTIN / "asyncio.yaml"
    assert problem.startswith(f"{path}:{line_of(path, 'id: asyncio-timeouts')}: ")
    assert f"first defined at {builtin_file}:{line_of(builtin_file, 'id: asyncio-timeouts')}" in (
        problem
    )


def test_a_follow_up_into_another_pack_is_an_error(corpus: Corpus, tmp_path: Path) -> None:
    write_topic(tmp_path / "a", "asyncio", [pack_question(corpus, "asyncio-timeouts", "in-a")])
    referring = pack_question(corpus, "asyncio-timeouts", "in-b")
    referring["follow_ups"].append({"ref": "in-a", "probes": "p"})
    fine = pack_question(corpus, "asyncio-timeouts", "also-in-b")
    fine["follow_ups"].append({"ref": "asyncio-cancellation-semantics", "probes": "built-in"})
    fine["follow_ups"].append({"ref": "in-b-2", "probes": "same pack"})
    same = pack_question(corpus, "asyncio-timeouts", "in-b-2")
    path = write_topic(tmp_path / "b", "asyncio", [referring, fine, same])
    report = read_corpus(BUILTIN, [tmp_path / "a", tmp_path / "b"])
    [issue] = report.issues
    assert (issue.path, issue.line) == (path, line_of(path, "ref: in-a"))
    assert issue.message == (
        f"question 'in-b' in pack {tmp_path / 'b'} refers to 'in-a', which is in pack "
        f"{tmp_path / 'a'}; a pack may refer to the built-in corpus and to itself"
    )
    assert report.corpus is not None
    assert {"in-a", "also-in-b", "in-b-2"} <= set(report.corpus.questions)
    assert "in-b" not in report.corpus.questions  # its follow-up could not be followed


def test_a_question_behind_a_broken_follow_up_is_dropped_with_a_reason(
    corpus: Corpus, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    broken = pack_question(corpus, "asyncio-timeouts", "p-broken")
    broken["follow_ups"].append({"ref": "no-such-question", "probes": "p"})
    behind = pack_question(corpus, "asyncio-timeouts", "p-behind")
    behind["follow_ups"].append({"ref": "p-broken", "probes": "p"})
    path = write_topic(pack, "asyncio", [broken, behind])
    loaded = load_corpus(BUILTIN, [pack])
    assert "p-broken" not in loaded.questions and "p-behind" not in loaded.questions
    assert loaded.pack_issues == [
        f"{path}:{line_of(path, 'ref: no-such-question')}: question 'p-broken': follow-up "
        "refers to missing question 'no-such-question'",
        f"{path}:{line_of(path, 'ref: p-broken')}: question 'p-behind': follow-up refers to "
        "'p-broken', which is not loaded (see its problem), so this question is not loaded "
        "either",
    ]


def test_pack_topics(corpus: Corpus, tmp_path: Path) -> None:
    """A pack's topics.yaml adds new topics only; a pack uses built-in topics and its own."""
    a, b = tmp_path / "a", tmp_path / "b"
    a_topics = write_topics(a, "team_a", "asyncio", "team_unused")
    write_topic(a, "team_a", [pack_question(corpus, "asyncio-timeouts", "a-1")])
    b_file = write_topic(b, "team_a", [pack_question(corpus, "asyncio-timeouts", "b-1")])
    write_topic(b, "asyncio", [pack_question(corpus, "asyncio-timeouts", "b-2")])
    report = read_corpus(BUILTIN, [a, b])
    messages = {(i.path, i.line): i.message for i in report.issues}
    builtin_topics = BUILTIN / "topics.yaml"
    assert messages == {
        (a_topics, line_of(a_topics, "id: asyncio")): (
            f"topic 'asyncio' is already defined at {builtin_topics}:"
            f"{line_of(builtin_topics, 'id: asyncio')}; a pack's topics.yaml lists only new "
            "topics (its questions may use the built-in topics without listing them)"
        ),
        (a_topics, line_of(a_topics, "id: team_unused")): (
            "topic 'team_unused' has no questions: add team_unused.yaml to the pack or remove "
            "the topic"
        ),
        (b_file, line_of(b_file, "topic: team_a")): (
            f"topic 'team_a' belongs to pack {a} ({a_topics}:{line_of(a_topics, 'id: team_a')});"
            " a pack may use the built-in topics and its own"
        ),
    }
    assert report.corpus is not None
    assert {"a-1", "b-2"} <= set(report.corpus.questions)
    assert "b-1" not in report.corpus.questions
    assert "team_a" in report.corpus.topics and "team_unused" not in report.corpus.topics


def test_a_missing_pack_folder_is_reported_and_the_rest_loads(
    corpus: Corpus, team_pack: Path, tmp_path: Path
) -> None:
    loaded = load_corpus(BUILTIN, [tmp_path / "nowhere", team_pack, BUILTIN])
    assert sorted(loaded.pack_issues) == sorted(
        [
            f"{BUILTIN}:1: this is the built-in corpus folder, not a question pack",
            f"{tmp_path / 'nowhere'}:1: question pack folder does not exist",
        ]
    )
    assert len(loaded.questions) == len(corpus.questions) + 3


# -- bad input: one line each, naming file and line; the valid questions still load -------
@pytest.fixture
def good_file(tmp_path: Path, corpus: Corpus) -> Path:
    """A valid pack file next to the bad one in each test below."""
    return write_topic(
        tmp_path / "pack", "exceptions", [pack_question(corpus, "asyncio-timeouts", "good-one")]
    )


def bad_input(pack: Path, corpus: Corpus) -> tuple[CorpusIssue, Corpus]:
    """Read the pack: exactly one problem, and the built-in corpus and the good file load
    (what :func:`load_corpus` returns, with the problem in ``pack_issues``)."""
    report = read_corpus(BUILTIN, [pack])
    assert len(report.issues) == 1, report.issues
    [issue] = report.issues
    assert issue.pack == pack and "\n" not in str(issue)
    loaded = report.corpus
    assert loaded is not None and loaded.pack_issues == [str(issue)]
    assert "good-one" in loaded.questions
    assert set(corpus.questions) < set(loaded.questions)
    return issue, loaded


def test_bad_input_yaml_syntax_error(corpus: Corpus, good_file: Path) -> None:
    question = pack_question(corpus, "asyncio-timeouts", "bad-one")
    path = write_topic(good_file.parent, "asyncio", [question])
    lines = path.read_text().splitlines()
    at = line_of(path, "difficulty:")
    lines.insert(at, "    broken: [unclosed")
    path.write_text("\n".join(lines) + "\n")
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, at + 1)
    assert issue.message.startswith("invalid YAML: ")


def test_bad_input_5_mb_model_answer(corpus: Corpus, good_file: Path) -> None:
    """Over the file cap: rejected before parsing, at the line that passes the cap."""
    question = pack_question(corpus, "asyncio-timeouts", "huge-one")
    question["model_answer"] = "word " * (1024 * 1024)  # 5 MB on one line
    path = write_topic(good_file.parent, "asyncio", [question])
    assert path.stat().st_size > 5 * 1024 * 1024
    started = time.perf_counter()
    issue, _ = bad_input(good_file.parent, corpus)
    assert time.perf_counter() - started < 5
    assert (issue.path, issue.line) == (path, line_of(path, "model_answer:"))
    assert issue.message.startswith("file too large (5.0 MB; a corpus file may have at most 2.0")


def test_bad_input_long_field_under_the_file_cap(corpus: Corpus, good_file: Path) -> None:
    """Within the file cap, the schema's length cap rejects the one question, with its line;
    the other question of the same file loads."""
    long = pack_question(corpus, "asyncio-timeouts", "long-one")
    long["model_answer"] = "word " * (MAX_FILE_BYTES // 10)  # one line of ~1 MB
    fine = pack_question(corpus, "asyncio-timeouts", "same-file-fine")
    path = write_topic(good_file.parent, "asyncio", [long, fine])
    issue, loaded = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, line_of(path, "model_answer:"))
    assert issue.message == (
        "question 'long-one': questions[0].model_answer: String should have at most "
        f"{MAX_LONG_TEXT_CHARS} characters"
    )
    assert "same-file-fine" in loaded.questions


BILLION_LAUGHS = """\
topic: asyncio
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
questions: [*i, *i, *i, *i, *i, *i, *i, *i, *i]
"""  # 9**10 "lol"s once expanded


def test_bad_input_yaml_bomb_fails_fast_in_little_memory(corpus: Corpus, good_file: Path) -> None:
    path = good_file.parent / "asyncio.yaml"
    path.write_text(BILLION_LAUGHS)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        parsed, issues = parse_file(path)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed is None
    assert [(i.line, i.message) for i in issues] == [
        (
            2,
            "YAML aliases (*name) are not allowed in corpus files, and this anchored value is "
            "reused by one; write each value out in full",
        )
    ]
    assert seconds < 1.0  # refused in milliseconds
    assert peak < 5 * 1024 * 1024  # a 9**10-element expansion would need gigabytes
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, 2)


def test_bad_input_any_alias_is_refused(corpus: Corpus, good_file: Path) -> None:
    question = pack_question(corpus, "asyncio-timeouts", "alias-one")
    path = write_topic(good_file.parent, "asyncio", [question])
    text = path.read_text()
    text = text.replace("  subtopics:\n", "  subtopics: &shared\n", 1)
    text = text.replace("  roles:\n", "  extra: *shared\n  roles:\n", 1)
    path.write_text(text)
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, line_of(path, "subtopics: &shared"))
    assert "aliases" in issue.message


def test_bad_input_non_utf8_file(corpus: Corpus, good_file: Path) -> None:
    question = pack_question(corpus, "asyncio-timeouts", "latin-one")
    path = write_topic(good_file.parent, "asyncio", [question])
    text = path.read_text(encoding="utf-8")
    at = line_of(path, "question:")
    lines = text.splitlines(keepends=True)
    lines[at - 1] = lines[at - 1].replace("question:", "question: caf\u00e9", 1)
    path.write_bytes("".join(lines).encode("latin-1"))
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, at)
    column = lines[at - 1].index("\u00e9") + 1
    assert issue.message == f"not valid UTF-8: byte 0xe9 at column {column}; save the file as UTF-8"


def test_bad_input_topic_not_in_topics_yaml(corpus: Corpus, good_file: Path) -> None:
    path = write_topic(
        good_file.parent, "team_unknown", [pack_question(corpus, "asyncio-timeouts", "lost-one")]
    )
    issue, loaded = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, line_of(path, "topic: team_unknown"))
    assert issue.message == (
        "topic 'team_unknown' is neither a built-in topic nor listed in this pack's topics.yaml"
    )
    assert "lost-one" not in loaded.questions and "team_unknown" not in loaded.topics


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_bad_input_empty_file(corpus: Corpus, good_file: Path, text: str) -> None:
    path = good_file.parent / "asyncio.yaml"
    path.write_text(text)
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line, issue.message) == (path, 1, "file is empty")


def test_bad_input_unknown_yaml_tag(corpus: Corpus, good_file: Path) -> None:
    path = good_file.parent / "asyncio.yaml"
    path.write_text("topic: asyncio\nquestions:\n  - !!python/object:os.system {}\n")
    issue, _ = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, 3)
    assert "could not determine a constructor" in issue.message


def test_bad_input_leftover_template_text(corpus: Corpus, good_file: Path) -> None:
    question = pack_question(corpus, "asyncio-timeouts", "todo-one")
    question["rubric"]["criteria"][1]["key_points"][0] = "TODO: a concrete fact."
    path = write_topic(good_file.parent, "asyncio", [question])
    issue, loaded = bad_input(good_file.parent, corpus)
    assert (issue.path, issue.line) == (path, line_of(path, "TODO: a concrete fact."))
    assert issue.message == (
        "question 'todo-one': questions[0].rubric.criteria[1].key_points[0]: still holds the "
        "template's TODO text; write your own"
    )
    assert "todo-one" not in loaded.questions


# -- packs are indexed and selected like built-in questions --------------------------------
def test_pack_questions_are_indexed_and_selected_like_built_ins(
    tmp_path: Path, corpus: Corpus
) -> None:
    """A small built-in corpus plus a pack, through build_foundation: the pack's question
    is in the index and is what the selector opens with for its topic; editing the pack
    makes the index stale, and the next start re-embeds just that question."""
    builtin = tmp_path / "corpus"
    builtin.mkdir()
    shutil.copy(BUILTIN / "topics.yaml", builtin / "topics.yaml")
    write_topic(
        builtin,
        "asyncio",
        [
            pack_question(corpus, "asyncio-timeouts", "asyncio-timeouts"),
            pack_question(corpus, "asyncio-vector-db-client", "asyncio-vector-db-client"),
        ],
    )
    pack = tmp_path / "pack"
    write_topics(pack, "team_billing")
    pack_file = write_topic(
        pack,
        "team_billing",
        [pack_question(corpus, "asyncio-timeouts", "billing-one", roles=["backend"])],
    )
    settings = make_settings(tmp_path / "data", corpus_dir=builtin, corpus_packs=[pack])
    foundation = build_foundation(settings, warm_vectors=False)
    try:
        assert foundation.index is not None and foundation.index_error is None
        assert foundation.index_report is not None and foundation.index_report.added == 3
        assert foundation.index.count() == 3
        plan = InterviewSetup(role=Role.BACKEND, topics=["team_billing"], difficulty=3, length=3)
        assert foundation.selector.first(plan).item.id == "billing-one"
    finally:
        foundation.store.close()

    text = pack_file.read_text().replace("question: ", "question: In our billing service, ", 1)
    pack_file.write_text(text)
    edited = load_corpus(builtin, [pack])
    index = QuestionIndex.open(settings)
    assert index.is_stale(edited)
    report = index.sync(edited)
    assert (report.added, report.updated, report.deleted) == (0, 1, 0)
    assert not index.is_stale(edited)
    assert index.sync(load_corpus(builtin)).deleted == 1  # the pack removed again


# -- interviewer corpus new TOPIC ----------------------------------------------------------
MODEL_ANSWER = " ".join(
    [
        "A strong answer explains the mechanism first and then the trade-offs.",
        "It names the standard library API that does the work, says which Python version",
        "introduced it, and shows how a failure surfaces to the caller.",
    ]
    * 6
)


def fill_template(value: Any, key: str = "") -> Any:
    """Replace every TODO text of a template as an author would."""
    if isinstance(value, dict):
        return {k: fill_template(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_template(v, f"{key} {n}") for n, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("TODO"):
        return MODEL_ANSWER if key == "model_answer" else f"A filled-in {key} text."
    return value


def fill_file(path: Path) -> None:
    data = fill_template(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert "TODO" not in json.dumps(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_corpus_new_writes_a_template_that_passes_once_filled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pack"
    assert main(["corpus", "new", "team_billing", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    topic_file, topics_file = folder / "team_billing.yaml", folder / "topics.yaml"
    assert f"wrote {topic_file}" in out and f"wrote {topics_file}" in out
    # the template parses as it stands, and is commented
    data = yaml.safe_load(topic_file.read_text(encoding="utf-8"))
    assert data["topic"] == "team_billing" and len(data["questions"]) == 1
    assert topic_file.read_text().count("#") > 10
    assert yaml.safe_load(topics_file.read_text())["topics"][0]["id"] == "team_billing"

    # unfilled, the check names every TODO line and fails
    assert main(["corpus", "check", str(folder)]) == 1
    err = capsys.readouterr().err
    lines = topic_file.read_text().splitlines()
    leftovers = [
        int(line.split(":")[1])
        for line in err.splitlines()
        if line.startswith(f"{topic_file}:") and "still holds the template's TODO text" in line
    ]
    assert len(leftovers) == json.dumps(data).count('"TODO') >= 20
    for number in leftovers:  # the TODO's line, or the key line of a block of text
        assert "TODO" in lines[number - 1] or "TODO" in lines[number], lines[number - 1]
    assert f"{topics_file}:" in err

    fill_file(topic_file)
    fill_file(topics_file)
    assert main(["corpus", "check", str(folder)]) == 0, capsys.readouterr().err
    assert "pack OK: 1 questions in 1 topics" in capsys.readouterr().out
    merged = load_corpus(BUILTIN, [folder])
    assert merged.get("team-billing-first-question").topic == "team_billing"
    assert merged.topics["team_billing"].title.startswith("A filled-in")


def test_corpus_new_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "asyncio.yaml"
    path.write_text("my own work\n")
    assert main(["corpus", "new", "asyncio", "--dir", str(tmp_path)]) == 1
    assert f"error: {path} already exists; not overwritten" in capsys.readouterr().err
    assert path.read_text() == "my own work\n"
    assert not (tmp_path / "topics.yaml").exists()


def test_corpus_new_for_a_built_in_topic_writes_no_topics_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the default folder is the current one
    assert main(["corpus", "new", "asyncio"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asyncio.yaml"]
    fill_file(tmp_path / "asyncio.yaml")
    capsys.readouterr()
    assert main(["corpus", "check", "."]) == 0, capsys.readouterr().err


def test_corpus_new_says_what_to_add_to_an_existing_topics_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = write_topics(tmp_path, "team_a")
    before = topics.read_text()
    assert main(["corpus", "new", "team_b", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"note: 'team_b' is a new topic: add it to {topics}:" in out
    assert "  - id: team_b" in out
    assert topics.read_text() == before


@pytest.mark.parametrize("topic", ["Team", "team-billing", "1team", "x" * 41, "../escape"])
def test_corpus_new_rejects_a_bad_topic_id(
    tmp_path: Path, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["corpus", "new", topic, "--dir", str(tmp_path)]) == 1
    assert "is not a topic id" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_no_pack_setting_leaks_out_of_these_tests() -> None:
    """Runs after the tests above that set INTERVIEWER_CORPUS_PACKS: the shared index and
    every later test must see the built-in corpus alone."""
    assert os.environ.get("INTERVIEWER_CORPUS_PACKS") == PACKS_AT_START
    assert get_settings().corpus_packs == Settings().corpus_packs
