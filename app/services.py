"""Wiring: build the corpus, index, selector, graders, store and engine from settings.

Shared by the Streamlit app, the terminal chat, the evals and the benchmarks, so each of them
assembles the same objects the same way. The UI caches what this returns per process.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass

from app.config import Settings
from app.corpus import Corpus, load_corpus
from app.embeddings import MODEL_ID, VectorCache, get_encoder
from app.grading import make_grader
from app.grading.llm_grader import LLMGrader
from app.grading.offline import OfflineGrader, rubric_texts
from app.interview.engine import InterviewEngine
from app.interview.interviewer import Interviewer
from app.llm import LLMClient
from app.retrieval.index import IndexUnavailableError, QuestionIndex, SyncReport
from app.retrieval.selector import Selector
from app.store import Store

log = logging.getLogger(__name__)


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
    except (IndexUnavailableError, OSError, ValueError, RuntimeError) as exc:
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


_shared: dict[str, Foundation] = {}
_shared_locks: dict[str, threading.Lock] = {}
_shared_guard = threading.Lock()


def shared_foundation(settings: Settings) -> Foundation:
    """One :class:`Foundation` per process and settings, built once even when asked for from
    several threads at a time: ``interviewer app`` starts building it while the web server
    boots, and the first page picks up the same object instead of building its own."""
    key = settings.model_dump_json()
    with _shared_guard:
        lock = _shared_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _shared:
            _shared[key] = build_foundation(settings)
        return _shared[key]


def build_engine(
    foundation: Foundation,
    model: str | None = None,
    api_key: str | None = None,
    api_base: str | None = None,
) -> InterviewEngine:
    """An engine for one model choice: offline when ``model`` is empty."""
    settings = foundation.settings
    if api_base is not None:
        settings = settings.model_copy(update={"llm_api_base": api_base or None})
    grader: OfflineGrader | LLMGrader = make_grader(settings, model=model, api_key=api_key)
    llm = grader.client if isinstance(grader, LLMGrader) else None
    return InterviewEngine(
        corpus=foundation.corpus,
        selector=foundation.selector,
        grader=grader,
        interviewer=Interviewer(settings.prompts_dir, llm),
        store=foundation.store,
        default_seed=settings.seed,
    )


def grader_label(engine: InterviewEngine) -> tuple[str, str | None]:
    if isinstance(engine.grader, LLMGrader):
        client: LLMClient = engine.grader.client
        return "llm", client.model
    return "offline", None
