"""The interview engine, its SQLite store, crash recovery, the report and the terminal chat."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.bands import PASS, Band, band
from app.corpus import Role
from app.corpus.items import follow_up_id
from app.interview.engine import EngineError, InterviewEngine, InterviewSetup, Mode
from app.interview.interviewer import HINT_PENALTY, MAX_HINTS, Interviewer
from app.interview.report import report_json, report_markdown
from app.retrieval.selector import SelectionError
from app.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError

from .conftest import first_open_race

SETUP = InterviewSetup(role=Role.BACKEND, topics=["asyncio", "exceptions"], length=3, seed=5)


def start(engine: InterviewEngine, setup: InterviewSetup = SETUP):  # type: ignore[no-untyped-def]
    return engine.start(setup)


# -- store ----------------------------------------------------------------------------------
def test_store_uses_wal_and_current_schema(store: Store) -> None:
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)


def test_store_migrates_a_first_release_database(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO sessions VALUES ('old1', 1, 1, 'backend', '[\"asyncio\"]', 3, 5, 'practice',"
        " 7, 'offline', NULL, 'active', NULL)"
    )
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.get_session("old1").topics == ["asyncio"]
    store.record_event("old1", None, "note", "works after the upgrade")
    assert store.events("old1")[0].text == "works after the upgrade"
    store.close()


def test_two_processes_can_create_the_database_at_once(tmp_path: Path) -> None:
    """Two first starts on an empty data dir: both must open it (no 'table already exists')."""
    errors = first_open_race(
        tmp_path,
        "from app.store import SCHEMA_VERSION, Store",
        "store = Store(data_dir / 'interviews.sqlite3'); "
        "assert store.schema_version == SCHEMA_VERSION; store.close()",
        rounds=12,
    )
    assert errors == []


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this release"):
        Store(path)


def test_answer_cannot_be_recorded_twice(store: Store) -> None:
    session = store.create_session(
        role="backend",
        topics=["asyncio"],
        difficulty=3,
        length=3,
        mode="practice",
        seed=1,
        grader="offline",
        model=None,
    )
    turn = store.add_turn(
        session.id,
        item_id="x",
        parent_id=None,
        topic="asyncio",
        difficulty=3,
        question_text="Q?",
        reason="r",
        follow_up=False,
    )
    store.record_answer(session.id, turn.position, "first")
    with pytest.raises(StoreError):
        store.record_answer(session.id, turn.position, "second")
    assert store.get_turn(session.id, 0).answer_text == "first"


# -- engine transitions ------------------------------------------------------------------------
def test_practice_session_full_cycle(offline_engine: InterviewEngine) -> None:
    view = start(offline_engine)
    assert view.current is not None and view.current.status == "asked"
    assert not view.finished and view.show_feedback
    first_item = offline_engine.current_item(view.session.id)
    view = offline_engine.submit_answer(view.session.id, first_item.reference_answer, position=0)
    graded = view.turns[0]
    assert graded.status == "graded" and graded.evaluation is not None
    assert graded.score is not None and graded.score >= 3.0
    assert graded.reference_answer == first_item.reference_answer
    assert view.current is not None and view.current.position == 1
    view = offline_engine.submit_answer(view.session.id, "I am not sure.", position=1)
    view = offline_engine.submit_answer(view.session.id, "", position=2)
    assert view.finished and view.current is None and view.closing_text
    with pytest.raises(EngineError, match="finished"):
        offline_engine.submit_answer(view.session.id, "late", position=3)
    report = offline_engine.report(view.session.id)
    assert report.answered == 3 and report.overall is not None
    assert report.gaps, "the weak answers must show up as gaps"
    assert report.practise_next
    markdown = report_markdown(report)
    assert "## Scores by topic" in markdown and "## Gaps" in markdown
    assert json.loads(report_json(report))["session_id"] == view.session.id


def test_mock_mode_holds_feedback_until_the_end(offline_engine: InterviewEngine) -> None:
    view = start(offline_engine, SETUP.model_copy(update={"mode": Mode.MOCK}))
    view = offline_engine.submit_answer(view.session.id, "An answer.", position=0)
    assert not view.show_feedback
    assert view.turns[0].evaluation is None and view.turns[0].score is None
    assert view.turns[0].reference_answer is None
    view = offline_engine.finish(view.session.id)
    assert view.finished and view.show_feedback
    assert view.turns[0].evaluation is not None


def test_skip_repeat_and_hints(offline_engine: InterviewEngine) -> None:
    view = start(offline_engine)
    session_id = view.session.id
    question = offline_engine.current_item(session_id).question
    assert question in offline_engine.repeat(session_id)
    hints = [offline_engine.hint(session_id, position=0) for _ in range(MAX_HINTS + 1)]
    names = [
        c.name[:1].lower() + c.name[1:]
        for c in offline_engine.current_item(session_id).rubric.criteria
    ]
    assert "hint" in hints[0].lower() and f"{HINT_PENALTY:g}" in hints[0]
    assert any(name in hints[0] for name in names) and hints[0] != hints[1]
    assert "all the hints" in hints[-1]
    view = offline_engine.view(session_id)
    assert view.current is not None and len(view.current.hints) == MAX_HINTS
    answer = offline_engine.current_item(session_id).reference_answer
    view = offline_engine.submit_answer(session_id, answer, position=0)
    turn = view.turns[0]
    assert turn.evaluation is not None and turn.score is not None
    assert turn.score == pytest.approx(max(0, turn.evaluation.overall - MAX_HINTS * HINT_PENALTY))
    view = offline_engine.skip(session_id, position=1)
    assert view.turns[1].status == "skipped"
    events = [e.kind for e in offline_engine.store.events(session_id)]
    assert events.count("hint") == MAX_HINTS and "repeat" in events and "skip" in events
    report = offline_engine.report(session_id)
    assert report.skipped == 1


def test_follow_up_after_a_weak_answer(offline_engine: InterviewEngine) -> None:
    """After a weak answer the next question is about what it missed (a declared follow-up
    aimed at a missed criterion, or the nearest question to the missed points), or a step
    down in the same topic; never a fresh topic or a harder question."""
    setup = InterviewSetup(role=Role.BACKEND, topics=["asyncio"], length=4, seed=2)
    view = start(offline_engine, setup)
    view = offline_engine.submit_answer(view.session.id, "I'd just use gather.", position=0)
    weak = view.turns[0]
    assert weak.evaluation is not None and weak.score is not None
    assert band(weak.score) is Band.WEAK  # the precondition: the answer really was weak
    missed = {c.criterion_id for c in weak.evaluation.criteria if c.score < PASS}
    _, asked = offline_engine.store.turns(view.session.id)
    assert asked.status == "asked" and asked.topic == weak.topic
    if asked.follow_up:
        assert asked.parent_id == weak.item_id
        declared = [
            f
            for i, f in enumerate(offline_engine.corpus.get(weak.item_id).follow_ups)
            if asked.item_id in (f.ref, follow_up_id(weak.item_id, i))
        ]
        if declared:
            assert set(declared[0].targets) & missed
            assert (
                asked.reason.startswith("Follow-up on a gap") and declared[0].probes in asked.reason
            )
        else:
            assert asked.reason.startswith("Probing the gap")
    else:
        assert asked.difficulty < weak.difficulty and asked.reason.startswith("Stepping down")


def test_bad_setup_is_rejected_before_anything_is_written(offline_engine: InterviewEngine) -> None:
    with pytest.raises(SelectionError, match="unknown topic"):
        start(offline_engine, SETUP.model_copy(update={"topics": ["astrology"]}))
    assert offline_engine.sessions() == []
    with pytest.raises(ValueError, match="length"):
        InterviewSetup(role=Role.BACKEND, topics=["asyncio"], length=40)


def test_resume_after_a_crash_between_saving_and_grading(offline_engine: InterviewEngine) -> None:
    """The answer was saved, then the process died before grading: the view completes it."""
    view = start(offline_engine)
    session_id = view.session.id
    offline_engine.store.record_answer(session_id, 0, "Saved but never graded.")
    reopened = Store(offline_engine.store.path)
    engine = InterviewEngine(
        offline_engine.corpus,
        offline_engine.selector,
        offline_engine.grader,
        offline_engine.interviewer,
        reopened,
    )
    view = engine.view(session_id)
    assert view.turns[0].status == "graded"
    assert view.turns[0].answer_text == "Saved but never graded."
    assert view.current is not None and view.current.position == 1
    reopened.close()


def second_window(engine: InterviewEngine) -> InterviewEngine:
    """The same session open elsewhere: another engine on its own connection to the file."""
    return InterviewEngine(
        engine.corpus, engine.selector, engine.grader, engine.interviewer, Store(engine.store.path)
    )


def test_an_answer_from_a_stale_window_is_refused(offline_engine: InterviewEngine) -> None:
    """A answers question 2 while B still shows it: B's answer must not land on question 3."""
    session_id = start(offline_engine).session.id
    window_a, window_b = offline_engine, second_window(offline_engine)
    window_a.submit_answer(session_id, "First answer from A.", position=0)
    shown_in_b = window_b.view(session_id).current
    assert shown_in_b is not None and shown_in_b.position == 1
    window_a.submit_answer(session_id, "Second answer from A.", position=1)
    with pytest.raises(EngineError, match="question 2 was already answered in another window"):
        window_b.submit_answer(session_id, "B answers what it shows.", position=1)
    for action in (window_b.skip, window_b.hint):
        with pytest.raises(EngineError, match="reload to see question 3"):
            action(session_id, position=1)
    turns = offline_engine.store.turns(session_id)
    assert turns[1].answer_text == "Second answer from A."
    assert turns[2].status == "asked" and turns[2].answer_text is None and turns[2].hints == 0
    window_b.store.close()


def test_terminal_chat_refuses_a_stale_answer_and_shows_the_new_question(
    offline_engine: InterviewEngine,
) -> None:
    from app.chat import run_chat

    session_id = start(offline_engine).session.id
    other = second_window(offline_engine)

    class AnsweredElsewhere(io.StringIO):
        """Input whose first line is typed after another window answered question 1."""

        def readline(self, size: int | None = -1) -> str:
            if self.tell() == 0:
                other.submit_answer(session_id, "Answered in the other window.", position=0)
            return super().readline(size)

    out = io.StringIO()
    run_chat(
        offline_engine,
        None,
        resume=session_id,
        stdin=AnsweredElsewhere("Typed for question 1.\n\n"),
        out=out,
    )
    text = " ".join(out.getvalue().split())
    refused = text.find("question 1 was already answered in another window")
    turns = offline_engine.store.turns(session_id)
    assert turns[0].answer_text == "Answered in the other window."
    assert all(t.answer_text != "Typed for question 1." for t in turns)
    # the chat moves on to the question the other window is now on
    next_question = " ".join(turns[1].question_text.split())
    assert 0 <= refused < text.find(next_question)
    other.store.close()


def test_history_delete_and_trend(offline_engine: InterviewEngine) -> None:
    one = start(offline_engine)
    offline_engine.submit_answer(one.session.id, "Some answer about asyncio tasks.", position=0)
    two = start(offline_engine)
    assert {s.id for s in offline_engine.sessions()} == {one.session.id, two.session.id}
    trend = offline_engine.score_trend()
    assert trend and trend[0]["session_id"] == one.session.id
    assert offline_engine.delete(one.session.id)
    assert [s.id for s in offline_engine.sessions()] == [two.session.id]
    assert offline_engine.store.turns(one.session.id) == []


def test_offline_interviewer_wording_is_varied_and_grounded(
    offline_engine: InterviewEngine,
) -> None:
    interviewer: Interviewer = offline_engine.interviewer
    openings = {interviewer.line("opening", seed, 0, topic="asyncio") for seed in range(20)}
    assert len(openings) >= 3
    view = start(offline_engine)
    item = offline_engine.current_item(view.session.id)
    assert view.current is not None and item.question in view.current.interviewer_text
    assert item.reference_answer not in view.current.interviewer_text


def test_llm_phrasing_is_used_only_when_grounded(
    offline_engine: InterviewEngine, openai_server
) -> None:  # type: ignore[no-untyped-def]
    from app import aio
    from app.corpus.items import item_from_question
    from app.llm import CallPolicy, LiteLLMChatModel
    from app.retrieval.selector import Decision, Selection
    from tests.support.openai_server import Reply

    item = offline_engine.corpus.get("asyncio-timeouts")
    selection = Selection(item_from_question(item), Decision.NEXT_TOPIC, topic_title="Asyncio")
    assert selection.reason == f"Next topic: Asyncio, difficulty {item.difficulty}"
    policy = CallPolicy("openai/stub", api_base=openai_server.base_url, api_key="k", max_retries=0)
    interviewer = Interviewer(
        offline_engine.interviewer.prompt.path.parent, LiteLLMChatModel(policy)
    )
    grounded = f"Thanks, that was helpful. Let's talk about timeouts. {item.question}"
    openai_server.queue(
        Reply(content=grounded),
        Reply(content="Tell me about your favourite football team and your weekend plans."),
        Reply(content="Great. " + " ".join(item.model_answer.split()[:30])),
    )
    kwargs = {"seed": 1, "position": 1, "topic_title": "Asyncio"}
    assert aio.run(interviewer.phrase(selection, "next_topic", **kwargs)) == grounded
    off_topic = aio.run(interviewer.phrase(selection, "next_topic", **kwargs))
    assert off_topic.endswith(item.question) and "football" not in off_topic
    leaking = aio.run(interviewer.phrase(selection, "next_topic", **kwargs))
    assert leaking.endswith(item.question)


# -- kill -9 mid-interview -------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import app
    from app.config import Settings
    from app.corpus.models import Role
    from app.interview.engine import InterviewSetup
    from app.services import build_engine, build_foundation

    settings = Settings(data_dir=Path(sys.argv[1]))
    engine = build_engine(build_foundation(settings, warm_vectors=False), model="")
    view = engine.start(InterviewSetup(role=Role.BACKEND, topics=["asyncio"], length=15, seed=1))
    print(view.session.id, flush=True)
    for number in range(1000):
        engine.submit_answer(view.session.id, f"answer number {number} about asyncio tasks",
                             position=number)
        print(f"submitted {number}", flush=True)
    """
)


@pytest.mark.slow
def test_kill_minus_nine_loses_no_submitted_answer(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "interview.py"
    script.write_text(KILL_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(settings.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert process.stdout is not None
    session_id = process.stdout.readline().strip()
    acknowledged = -1
    deadline = time.monotonic() + 240
    while acknowledged < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("submitted"):
            acknowledged = int(line.split()[1])
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert acknowledged >= 3

    store = Store(settings.database_path)
    answers = {t.answer_text for t in store.turns(session_id) if t.answer_text}
    for number in range(acknowledged + 1):
        assert f"answer number {number} about asyncio tasks" in answers
    store.close()


# -- terminal chat --------------------------------------------------------------------------------
def test_terminal_chat_scripted(offline_engine: InterviewEngine) -> None:
    from app.chat import run_chat

    script = io.StringIO(
        "I would use asyncio.timeout around the call\nand re-raise CancelledError.\n\n"
        "/hint\n/repeat\n"
        "Not sure.\n\n"
        "/skip\n"
    )
    out = io.StringIO()
    session_id = run_chat(offline_engine, SETUP, stdin=script, out=out)
    text = out.getvalue()
    assert "Interviewer:" in text and "Score " in text
    assert "Hint" in text or "hint" in text
    assert "# Interview report" in text
    turns = offline_engine.store.turns(session_id)
    assert turns[0].answer_text == (
        "I would use asyncio.timeout around the call\nand re-raise CancelledError."
    )
    assert [t.status for t in turns] == ["graded", "graded", "skipped"]


def test_terminal_chat_pauses_on_end_of_input(offline_engine: InterviewEngine) -> None:
    from app.chat import run_chat

    out = io.StringIO()
    session_id = run_chat(offline_engine, SETUP, stdin=io.StringIO("First answer.\n"), out=out)
    assert f"--resume {session_id}" in out.getvalue()
    resumed = io.StringIO()
    run_chat(
        offline_engine,
        None,
        resume=session_id,
        stdin=io.StringIO("Second.\n\nThird.\n\n"),
        out=resumed,
    )
    assert "# Interview report" in resumed.getvalue()


def test_chat_command_runs_offline_end_to_end(settings) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "INTERVIEWER_DATA_DIR": str(settings.data_dir)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "chat",
            "--role",
            "data_engineer",
            "--topics",
            "etl",
            "--length",
            "3",
            "--seed",
            "4",
        ],
        input="A generator streams rows lazily.\n\n/skip\nNo idea.\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "# Interview report (data_engineer, practice)" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--topics", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2 and "unknown topic" in bad.stderr


def test_chat_command_replaces_invalid_utf8_and_keeps_going(settings) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "INTERVIEWER_DATA_DIR": str(settings.data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--topics", "etl", "--length", "3", "--seed", "4"],
        input=b"A generator streams rows \xff\xfe lazily.\n\n/skip\nNo idea.\n\n",
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    assert "# Interview report" in result.stdout.decode()
    store = Store(settings.database_path)
    (session,) = store.list_sessions()
    answers = [t.answer_text for t in store.turns(session.id)]
    store.close()
    assert answers[0] == "A generator streams rows \ufffd\ufffd lazily."
    assert answers[2] == "No idea."
