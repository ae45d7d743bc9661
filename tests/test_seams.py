"""The seams: graders by name, the ChatModel protocol and its mock, the error hierarchy, score
bands and the selector's structured decisions, and the services the front ends use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import aio, errors
from app.bands import PASS, STRONG, WEAK, Band, band
from app.cli import main
from app.config import REPO_DIR
from app.corpus import Corpus, Role
from app.corpus.items import InterviewItem, item_from_question
from app.evals.dataset import load_datasets
from app.grading import GraderContext, available, grade_many, make_grader
from app.grading.cosine import COACHING, CosineGrader, load_params
from app.grading.llm_grader import MOCK_SCORE, LLMGrader
from app.grading.offline import OfflineGrader
from app.grading.registry import GRADERS
from app.interview.engine import InterviewEngine, InterviewSetup
from app.interview.interviewer import transition_kind
from app.llm import LiteLLMChatModel, MockChatModel, Usage, make_chat_model
from app.llm.mock import MOCK_TEXT, schema_example
from app.retrieval.selector import Decision, Selection
from app.services import (
    Foundation,
    build_engine,
    roles,
    score_trend,
    shown_error,
    topics_for_role,
)
from app.store import Store

from .conftest import make_settings, write_json_lines

ANSWER = "I would cap in-flight calls with an asyncio.Semaphore. Then retry 429s with backoff."


@pytest.fixture(scope="module")
def item(corpus: Corpus) -> InterviewItem:
    return item_from_question(corpus.get("asyncio-vector-db-client"))


@pytest.fixture(scope="module")
def offline() -> OfflineGrader:
    return OfflineGrader(REPO_DIR / "prompts")


# -- language models -------------------------------------------------------------------------
def test_usage_adds_up_and_unknown_stays_unknown() -> None:
    total = Usage(10, 5, 0.01) + Usage(None, 7, None) + Usage(3, None, 0.02)
    assert total == Usage(13, 12, pytest.approx(0.03))
    assert Usage() + Usage() == Usage(None, None, None)


def test_make_chat_model_picks_the_mock_by_name(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert isinstance(make_chat_model(settings, "mock"), MockChatModel)
    assert make_chat_model(settings, "mock/anything").name == "mock/anything"
    assert isinstance(make_chat_model(settings, "openai/gpt-4o-mini"), LiteLLMChatModel)
    assert isinstance(make_chat_model(settings, "mockingbird/x"), LiteLLMChatModel)


def test_mock_model_replays_what_was_enqueued_then_answers_the_same_way() -> None:
    model = MockChatModel()
    model.enqueue("first", errors.LLMError("down", attempts=3))
    messages = [{"role": "user", "content": "hello there"}]
    assert aio.run(model.complete(messages)).text == "first"
    with pytest.raises(errors.LLMError, match="down"):
        aio.run(model.complete(messages))
    reply = aio.run(model.complete(messages, temperature=0.4))
    assert reply.text == MOCK_TEXT and reply.usage.cost_usd == 0.0
    assert reply.usage.prompt_tokens == 2
    assert "".join(aio.iterate(model.stream(messages))) == MOCK_TEXT
    assert [r.temperature for r in model.history] == [0.0, 0.0, 0.4, 0.3]
    assert model.history[0].messages == messages


def test_mock_model_answers_a_schema_with_a_valid_object() -> None:
    from pydantic import BaseModel

    class Inner(BaseModel):
        label: str
        weight: float = 0.5

    class Reply(BaseModel):
        items: list[Inner]
        inner: Inner
        flag: bool
        count: int
        note: str | None

    example = schema_example(Reply)
    assert isinstance(example, Reply) and example.inner.weight == 0.5 and example.items == []
    text = aio.run(MockChatModel().complete([], schema=Reply)).text
    assert Reply.model_validate_json(text) == example


def test_llm_grader_on_the_mock_grades_every_criterion(
    item: InterviewItem, offline: OfflineGrader
) -> None:
    """No key and no server: the mock replies with every criterion of the prompt at a mid
    score, quoting the answer's first sentence, which the grader checks as usual."""
    chat = MockChatModel()
    grader = LLMGrader(chat, REPO_DIR / "prompts", fallback=offline)
    evaluation = aio.run(grader.grade(item, ANSWER))
    assert not evaluation.is_fallback and evaluation.grader.grader == "llm"
    assert evaluation.grader.model == "mock" and evaluation.grader.cost_usd == 0.0
    assert [c.criterion_id for c in evaluation.criteria] == [c.id for c in item.rubric.criteria]
    assert all(c.score == MOCK_SCORE for c in evaluation.criteria)
    first_sentence = "I would cap in-flight calls with an asyncio.Semaphore."
    assert all(c.evidence == [first_sentence] for c in evaluation.criteria)
    assert evaluation.overall == MOCK_SCORE and "mock" in evaluation.coaching
    assert chat.history[0].schema is not None  # the grader asked for its schema
    streamed = "".join(aio.iterate(grader.stream_feedback(item, evaluation)))
    assert streamed == MOCK_TEXT


def test_llm_grader_falls_back_through_the_grader_it_wraps(
    item: InterviewItem, offline: OfflineGrader
) -> None:
    chat = MockChatModel()
    chat.enqueue(errors.LLMError("RateLimitError: slow down", attempts=4))
    grader = LLMGrader(chat, REPO_DIR / "prompts", fallback=offline)
    evaluation = aio.run(grader.grade(item, ANSWER))
    assert evaluation.is_fallback and evaluation.grader.grader == "offline"
    assert evaluation.grader.attempts == 4 and "llm_fallback" in evaluation.flags
    assert evaluation.overall == offline.grade_sync(item, ANSWER).overall
    # a fallback evaluation's feedback is its coaching, not a call to the model
    assert list(aio.iterate(grader.stream_feedback(item, evaluation))) == [evaluation.coaching]
    assert len(chat.history) == 1


# -- graders by name ---------------------------------------------------------------------------
def test_registry_names_every_grader_and_picks_the_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert available() == list(GRADERS) and {"offline", "llm", "cosine"} <= set(available())
    assert make_grader(None, GraderContext.from_settings(settings)).name == "offline"
    with_model = GraderContext.from_settings(settings, model="mock")
    assert make_grader(None, with_model).name == "llm"
    assert make_grader("cosine", with_model).name == "cosine"
    configured = settings.model_copy(update={"llm_model": "mock"})
    assert make_grader(None, GraderContext.from_settings(configured)).name == "llm"
    assert make_grader(None, GraderContext.from_settings(configured, model="")).name == "offline"
    with pytest.raises(errors.ConfigError, match="unknown grader 'nope'"):
        make_grader("nope", with_model)
    with pytest.raises(errors.ConfigError, match="needs a language model"):
        make_grader("llm", GraderContext.from_settings(settings))


def test_capabilities_are_declared(tmp_path: Path) -> None:
    context = GraderContext.from_settings(make_settings(tmp_path), model="mock")
    graders = {name: make_grader(name, context) for name in available()}
    assert graders["llm"].capabilities.streams_feedback
    assert graders["llm"].capabilities.costs_money
    assert not graders["offline"].capabilities.streams_feedback
    assert not graders["cosine"].capabilities.quotes_evidence
    assert not any(g.capabilities.runs_code for g in graders.values())
    for name, grader in graders.items():
        assert grader.identity.name == name


def test_cosine_grader_is_a_similarity_baseline(corpus: Corpus, item: InterviewItem) -> None:
    grader = CosineGrader()
    params = load_params()
    assert params.fit["script"] == "evals/fit_cosine_grader.py"
    assert params.fit["split"] == "train" and int(str(params.fit["n"])) > 100
    assert grader.identity.model == f"minilm-cosine@{params.version}"
    good = aio.run(grader.grade(item, item.reference_answer))
    off_topic = aio.run(grader.grade(item, "Pandas groupby sorts the keys by default."))
    assert good.overall > off_topic.overall + 1
    for evaluation in (good, off_topic):
        scores = {c.score for c in evaluation.criteria}
        assert len(scores) == 1  # criterion-agnostic
        assert all(not c.evidence for c in evaluation.criteria)
        assert evaluation.coaching == COACHING and evaluation.grader.grader == "cosine"


def test_grade_many_keeps_order_and_records_failures(
    item: InterviewItem, offline: OfflineGrader
) -> None:
    answers = ["Semaphores cap concurrency.", "No idea.", "Retry with backoff."]
    done: list[int] = []

    class Flaky(CosineGrader):
        async def grade(self, item: InterviewItem, answer: str):  # type: ignore[no-untyped-def]
            if answer == "No idea.":
                raise RuntimeError("boom")
            return await super().grade(item, answer)

    result = aio.run(
        grade_many(Flaky(), [(item, a) for a in answers], 2, lambda i, _: done.append(i))
    )
    assert [e is None for e in result.evaluations] == [False, True, False]
    assert [(i, str(e)) for i, e in result.errors] == [(1, "boom")]
    assert sorted(done) == [0, 2]


def test_eval_with_the_cosine_grader_is_the_baseline_row(tmp_path: Path) -> None:
    items = [i for i in load_datasets([REPO_DIR / "evals" / "datasets" / "graded"])][:12]
    dataset = write_json_lines(
        tmp_path / "items.jsonl", [i.model_dump(exclude_none=True) for i in items]
    )
    common = ["--dataset", str(dataset), "--split", "all", "--quiet", "--no-cache"]
    assert main(["eval", "--grader", "cosine", "--out", str(tmp_path / "cosine"), *common]) == 0
    assert main(["eval", "--grader", "offline", "--out", str(tmp_path / "offline"), *common]) == 0
    cosine = json.loads((tmp_path / "cosine" / "metrics.json").read_text())
    offline = json.loads((tmp_path / "offline" / "metrics.json").read_text())
    assert cosine["grader"]["name"] == "cosine" and "baseline" not in cosine
    assert offline["baseline_grader"] == cosine["grader"]
    for key in ("spearman", "qwk", "mae", "within1"):
        assert offline["baseline"][key] == pytest.approx(cosine[key])


# -- errors ----------------------------------------------------------------------------------------
def test_every_user_facing_error_is_an_interviewer_error(store: Store) -> None:
    for error in (
        errors.ConfigError,
        errors.CorpusError,
        errors.QuestionNotFoundError,
        errors.SelectionError,
        errors.IndexUnavailableError,
        errors.GradingError,
        errors.LLMError,
        errors.TranscriptionError,
        errors.SessionNotFoundError,
        errors.EngineError,
    ):
        assert issubclass(error, errors.InterviewerError), error
        assert not issubclass(error, RuntimeError | KeyError), error
    with pytest.raises(errors.SessionNotFoundError, match="no interview session 'missing'"):
        store.get_session("missing")


def test_the_cli_shows_a_user_error_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    assert main(["eval", "--dataset", str(bad), "--quiet", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad}:1: invalid JSON" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_errors_shown_carry_no_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_api_key="configured-key-123456")
    text = shown_error(
        settings, "failed with configured-key-123456 and typed-key-98765", "typed-key-98765"
    )
    assert "configured-key" not in text and "typed-key" not in text


# -- bands and decisions ---------------------------------------------------------------------------
def test_bands_split_at_the_named_thresholds() -> None:
    assert WEAK < PASS < STRONG
    assert band(WEAK - 0.01) is Band.WEAK and band(WEAK) is Band.MIDDLE
    assert band(STRONG - 0.01) is Band.MIDDLE and band(STRONG) is Band.STRONG


def test_reasons_and_transitions_are_made_from_the_decision(item: InterviewItem) -> None:
    def selection(
        decision: Decision, after: Band | None = Band.WEAK, **detail: object
    ) -> Selection:
        return Selection(item, decision, after, **detail)  # type: ignore[arg-type]

    step_down = selection(Decision.STEP_DOWN)
    assert step_down.reason == (
        f"Stepping down to difficulty {item.difficulty} in {item.topic} after a weak answer"
    )
    assert transition_kind(step_down) == "step_down" and not step_down.follow_up
    probe = selection(Decision.PROBE_GAP, similarity=0.512)
    assert probe.follow_up and "similarity 0.51" in probe.reason
    assert transition_kind(probe) == "follow_up_gap"
    assert transition_kind(selection(Decision.HARDER, Band.STRONG)) == "follow_up_deeper"
    leftover = {
        after: transition_kind(selection(Decision.LEFTOVER_FOLLOW_UP, after, topic_title="T"))
        for after in (None, Band.WEAK, Band.MIDDLE, Band.STRONG)
    }
    assert leftover == {
        None: "after_skip",
        Band.WEAK: "follow_up_gap",
        Band.MIDDLE: "follow_up_gap",
        Band.STRONG: "follow_up_deeper",
    }
    after_strong = selection(Decision.NEXT_TOPIC, Band.STRONG, topic_title="Asyncio")
    assert after_strong.reason.startswith("Next topic, one level up after a strong answer: Asyncio")
    assert transition_kind(selection(Decision.OPENING, None)) == "opening"


# -- services and the engine on the mock model ----------------------------------------------------
def test_an_interview_on_the_mock_model(foundation: Foundation, tmp_path: Path) -> None:
    store = Store(tmp_path / "mock.sqlite3")
    own = Foundation(**{**foundation.__dict__, "store": store})
    engine: InterviewEngine = build_engine(own, model="mock")
    assert engine.streams_feedback
    view = engine.start(InterviewSetup(role=Role.BACKEND, topics=["asyncio"], length=3, seed=3))
    assert (view.session.grader, view.session.model) == ("llm", "mock")
    view = engine.submit_answer(view.session.id, ANSWER, position=0)
    evaluation = view.turns[0].evaluation
    assert evaluation is not None and not evaluation.is_fallback
    assert evaluation.grader.model == "mock"
    assert "".join(engine.stream_feedback(view.session.id, 0)) == MOCK_TEXT
    assert view.current is not None and view.current.interviewer_text  # grounded or offline words
    trend = score_trend(own, engine)
    title = foundation.corpus.topics["asyncio"].title
    assert trend.by_topic == {title: [evaluation.overall]} and len(trend.sessions) == 1
    store.close()


def test_role_and_topic_listing(foundation: Foundation) -> None:
    listed = dict(roles())
    assert list(listed) == [r.value for r in Role] and listed["backend"] == "Backend engineer"
    topics = dict(topics_for_role(foundation, "data_engineer"))
    assert "etl" in topics and topics["etl"] == foundation.corpus.topics["etl"].title
    corpus = foundation.corpus
    for topic in topics:
        assert any(Role.DATA_ENGINEER in q.roles for q in corpus.by_topic(topic))
