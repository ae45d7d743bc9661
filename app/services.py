"""Wiring and the questions the front ends ask: build the corpus, index, selector, graders,
store and engine from settings, and answer what the UI and the CLI show around them (roles
and topics, the score history, transcription, error text).

Shared by the Streamlit app, the terminal chat, the evals and the benchmarks, so each of them
assembles the same objects the same way. The UI caches what this returns per process and
imports nothing below this module but the engine's view types.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.config import Settings, resolve_api_key
from app.corpus import Corpus, load_corpus
from app.corpus.models import ROLE_LABELS, Role
from app.embeddings import MODEL_ID, VectorCache, get_encoder
from app.errors import RetrievalError
from app.grading import GraderContext, make_grader
from app.grading.offline import rubric_texts
from app.interview.engine import InterviewEngine
from app.interview.interviewer import Interviewer
from app.llm import ChatModel, make_chat_model
from app.llm.redact import redact
from app.retrieval.index import QuestionIndex, SyncReport
from app.retrieval.selector import Selector
from app.speech import Transcriber, Transcript, initial_prompt, make_transcriber
from app.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Foundation:
    """The parts that do not depend on the chosen model (built once per process)."""

    settings: Settings
    corpus: Corpus
    index: QuestionIndex | None
    index_report: SyncReport | None
    index_error: str | None
    selector: Selector
    store: Store


def open_index(
    settings: Settings, corpus: Corpus
) -> tuple[QuestionIndex | None, SyncReport | None, str | None]:
    """The question index, refreshed if stale; without it the selector still works from the
    corpus alone (no semantic follow-ups), so an unavailable index is reported, not fatal."""
    try:
        index = QuestionIndex.open(settings)
        report = index.sync(corpus) if index.is_stale(corpus) else None
        return index, report, None
    except RetrievalError as exc:
        log.warning("question index unavailable: %s", exc)
        return None, None, str(exc)


def warm_rubric_vectors(
    settings: Settings, corpus: Corpus, stop: threading.Event | None = None
) -> int:
    """Load (and if needed compute and save) the vectors of every rubric text; returns #new."""
    cache = VectorCache(settings.cache_dir / f"rubric-vectors-{MODEL_ID}.npz")
    return cache.warm(get_encoder(), rubric_texts(corpus), stop=stop)


_warm_stop = threading.Event()
_warm_threads: list[threading.Thread] = []


def _stop_background_warming() -> None:
    """At exit: let a warm-up thread finish its chunk (and save) before the interpreter goes.

    A daemon thread killed inside onnxruntime aborts the process ("terminate called without
    an active exception"), so a short CLI run must wait for the chunk, not the whole job.
    """
    _warm_stop.set()
    for thread in _warm_threads:
        thread.join(timeout=30)


atexit.register(_stop_background_warming)


def warm_in_background(settings: Settings, corpus: Corpus) -> threading.Thread:
    thread = threading.Thread(
        target=warm_rubric_vectors,
        args=(settings, corpus, _warm_stop),
        name="warm-vectors",
        daemon=True,
    )
    _warm_threads.append(thread)
    thread.start()
    return thread


def build_foundation(settings: Settings, warm_vectors: bool | None = None) -> Foundation:
    """Corpus, index (refreshed when stale), selector and store.

    ``warm_vectors`` embeds every rubric text once (kept on disk) in a background thread, so
    that the first answer to each question grades as fast as the rest without delaying the
    start; anything not yet warm is embedded on first use.
    """
    corpus = load_corpus(settings.corpus_dir, settings.corpus_packs)  # built-in + packs
    index, report, error = open_index(settings, corpus)
    if settings.warm_vectors if warm_vectors is None else warm_vectors:
        warm_in_background(settings, corpus)
    return Foundation(
        settings=settings,
        corpus=corpus,
        index=index,
        index_report=report,
        index_error=error,
        selector=Selector(corpus, index),
        store=Store(settings.database_path),
    )


class _PerSettings(Generic[T]):
    """One object per process and settings, built once even when asked for from several
    threads at a time: ``interviewer app`` starts building the foundation while the web
    server boots, and the first page picks up the same object instead of building its own."""

    def __init__(self) -> None:
        self._built: dict[str, T] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, settings: Settings, build: Callable[[Settings], T]) -> T:
        key = settings.model_dump_json()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._built:
                self._built[key] = build(settings)
            return self._built[key]


_foundations: _PerSettings[Foundation] = _PerSettings()
_transcribers: _PerSettings[Transcriber] = _PerSettings()


def shared_foundation(settings: Settings) -> Foundation:
    """The process's :class:`Foundation` for ``settings``."""
    return _foundations.get(settings, build_foundation)


def build_engine(
    foundation: Foundation,
    model: str | None = None,
    api_key: str | None = None,
    api_base: str | None = None,
) -> InterviewEngine:
    """An engine for one model choice (the configured one when ``model`` is None): the LLM
    grader and interviewer wording with a model, the offline grader without ("")."""
    settings = foundation.settings
    if api_base is not None:
        settings = settings.model_copy(update={"llm_api_base": api_base or None})
    context = GraderContext.from_settings(settings, model=model, api_key=api_key)
    chat: ChatModel | None = None
    if context.model:  # one model for the grader and the interviewer: one concurrency cap
        chat = shared = make_chat_model(settings, context.model, api_key)
        context = dataclasses.replace(context, chat_model_factory=lambda *_: shared)
    return InterviewEngine(
        corpus=foundation.corpus,
        selector=foundation.selector,
        grader=make_grader(None, context),
        interviewer=Interviewer(settings.prompts_dir, chat),
        store=foundation.store,
        default_seed=settings.seed,
    )


# -- what the front ends show -------------------------------------------------------------
def roles() -> list[tuple[str, str]]:
    """(role id, label) for every role, in the corpus schema's order."""
    return [(role.value, ROLE_LABELS[role]) for role in Role]


def role_label(role: str) -> str:
    return ROLE_LABELS[Role(role)]


def topics_for_role(foundation: Foundation, role: str) -> list[tuple[str, str]]:
    """(topic id, title) of the topics that have questions for ``role``, in corpus order."""
    corpus = foundation.corpus
    wanted = Role(role)
    return [
        (topic, info.title)
        for topic, info in corpus.topics.items()
        if any(wanted in q.roles for q in corpus.by_topic(topic))
    ]


def topic_title(foundation: Foundation, topic: str) -> str:
    """A topic's title; the id itself for a topic no longer in the corpus."""
    info = foundation.corpus.topics.get(topic)
    return info.title if info else topic


def corpus_summary(foundation: Foundation) -> str:
    corpus = foundation.corpus
    return (
        f"{len(corpus.questions)} questions in {len(corpus.topics)} topics "
        f"(corpus {corpus.version})"
    )


@dataclass(frozen=True)
class ScoreTrend:
    """Mean score per topic per session, oldest session first: the history chart."""

    sessions: list[str]  # each session's start time, "YYYY-MM-DD HH:MM"
    by_topic: dict[str, list[float | None]]  # topic title -> one mean per session (None: none)


def score_trend(foundation: Foundation, engine: InterviewEngine) -> ScoreTrend:
    means: dict[str, dict[str, list[float]]] = {}
    when: dict[str, str] = {}
    topics: set[str] = set()
    for row in engine.score_trend():
        session_id, topic = str(row["session_id"]), str(row["topic"])
        means.setdefault(session_id, {}).setdefault(topic, []).append(float(row["score"]))
        when[session_id] = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"]))
        topics.add(topic)
    by_topic = {
        topic_title(foundation, topic): [
            sum(scores[topic]) / len(scores[topic]) if topic in scores else None
            for scores in means.values()
        ]
        for topic in sorted(topics)
    }
    return ScoreTrend([when[s] for s in means], by_topic)


def transcribe_answer(
    foundation: Foundation, engine: InterviewEngine, session_id: str, audio: bytes
) -> Transcript:
    """The recorded answer to the session's waiting question, as text: the configured
    transcriber, prompted with that question's vocabulary."""
    transcriber = _transcribers.get(foundation.settings, make_transcriber)
    return transcriber.transcribe(audio, initial_prompt(engine.current_item(session_id)))


def shown_error(settings: Settings, error: BaseException | str, typed_key: str = "") -> str:
    """An error's text for the page or the terminal, without the configured key or one
    typed in for this session (or anything shaped like a key)."""
    return redact(str(error), [typed_key, resolve_api_key(settings)])
