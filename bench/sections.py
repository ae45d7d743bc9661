"""The benchmark sections; each returns a :class:`Table`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app import aio
from app.config import REPO_DIR, Settings
from app.corpus import Corpus, Role, load_corpus
from app.corpus.items import item_from_question
from app.embeddings import MiniLMEncoder
from app.evals.dataset import load_datasets, resolve
from app.grading import grade_many
from app.grading.llm_grader import LLMGrader
from app.grading.offline import OfflineGrader
from app.interview.engine import InterviewSetup
from app.llm import CallPolicy, LiteLLMChatModel
from app.retrieval.index import QuestionIndex, record_metadata
from app.retrieval.selector import AskedTurn, Selector
from app.services import build_engine, build_foundation, warm_rubric_vectors
from app.text import split_sentences
from bench.common import Table, peak_rss_mb, percentiles, scratch_settings
from bench.sandbox import sandbox
from tests.support.local import CHROMIUM, CHROMIUM_FLAGS, chroma_server, free_port
from tests.support.openai_server import OpenAIStubServer, Reply

GRADED = REPO_DIR / "evals" / "datasets" / "graded"


def _corpus() -> Corpus:
    return load_corpus(REPO_DIR / "corpus")


def _answer_sentences(limit: int) -> list[str]:
    items = load_datasets([GRADED])
    sentences = [s for item in items for s in split_sentences(item.answer, max_chars=220)]
    return list(dict.fromkeys(sentences))[:limit]


def embeddings(quick: bool) -> Table:
    table = Table(["texts", "mean words", "texts/s", "target"])
    encoder = MiniLMEncoder()
    encoder.encode(["warm up the session"])
    short = [f"Sentence {i} about asyncio tasks and cancellation." for i in range(1000)]
    answers = _answer_sentences(1000)
    for label, texts in (("1,000 short sentences", short), ("1,000 answer sentences", answers)):
        started = time.perf_counter()
        encoder.encode(texts)
        rate = len(texts) / (time.perf_counter() - started)
        words = float(np.mean([len(t.split()) for t in texts]))
        table.add(
            **{"texts": label, "mean words": round(words, 1), "texts/s": round(rate), "target": "-"}
        )
    return table


def index(quick: bool) -> Table:
    table = Table(["operation", "seconds", "target"])
    corpus = _corpus()
    with scratch_settings() as settings:
        started = time.perf_counter()
        built = QuestionIndex.open(settings)
        report = built.sync(corpus)
        table.add(
            operation=f"cold index of the corpus ({report.added} questions)",
            seconds=round(time.perf_counter() - started, 2),
            target="< 10 s",
        )
        first = next(iter(corpus.questions.values()))
        edited = first.model_copy(update={"question": first.question + " (edited)"})
        changed = corpus.model_copy(update={"questions": {**corpus.questions, first.id: edited}})
        started = time.perf_counter()
        again = built.sync(changed)
        table.add(
            operation=f"re-index after one edit ({again.updated} re-embedded)",
            seconds=round(time.perf_counter() - started, 3),
            target="< 1 s",
        )
        started = time.perf_counter()
        stale = built.is_stale(changed)
        table.add(
            operation=f"staleness check at app start (stale={stale})",
            seconds=round(time.perf_counter() - started, 3),
            target="-",
        )
        started = time.perf_counter()
        new = warm_rubric_vectors(settings, corpus)
        table.add(
            operation=f"cold rubric vectors ({new} texts, once per corpus version)",
            seconds=round(time.perf_counter() - started, 1),
            target="-",
        )
    return table


def _synthetic(corpus: Corpus, size: int) -> tuple[Corpus, list[str]]:
    real = list(corpus.questions.values())
    questions = dict(corpus.questions)
    ids = list(questions)
    for i in range(max(0, size - len(real))):
        source = real[i % len(real)]
        clone = source.model_copy(update={"id": f"{source.id}-syn{i}"})
        questions[clone.id] = clone
        ids.append(clone.id)
    return corpus.model_copy(update={"questions": questions}), ids


def _fill(index: QuestionIndex, corpus: Corpus, ids: list[str], rng: np.random.Generator) -> float:
    """Real questions embedded for real; synthetic ones get random unit vectors."""
    started = time.perf_counter()
    real = {qid for qid in ids if "-syn" not in qid}
    index.sync(corpus.model_copy(update={"questions": {q: corpus.questions[q] for q in real}}))
    synthetic = [qid for qid in ids if qid not in real]
    for start in range(0, len(synthetic), 2000):
        chunk = synthetic[start : start + 2000]
        vectors = rng.normal(size=(len(chunk), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index.collection.upsert(
            ids=chunk,
            embeddings=list(vectors),
            metadatas=[record_metadata(corpus.questions[q], []) for q in chunk],
        )
    return time.perf_counter() - started


def _time_selection(selector: Selector, corpus: Corpus, rounds: int) -> tuple[float, float]:
    plan = InterviewSetup(
        role=Role.BACKEND, topics=["asyncio", "exceptions", "concurrency"], length=15, seed=1
    )
    first = item_from_question(corpus.get("asyncio-vector-db-client"))
    selector.next(plan, [AskedTurn(item=first, score=1.0, answer="warm up")])  # model load
    samples = []
    for i in range(rounds):
        history = [
            AskedTurn(
                item=first,
                score=1.0,
                answer=f"Attempt {i}: I would gather all the calls and retry them.",
                missed_key_points=first.rubric.criteria[i % 5].key_points,
            )
        ]
        started = time.perf_counter()
        selection = selector.next(plan, history)
        samples.append(time.perf_counter() - started)
        assert selection is not None
    return percentiles(samples)


def selection(quick: bool) -> Table:
    table = Table(["questions", "mode", "load s", "p50 ms", "p99 ms", "target"])
    corpus = _corpus()
    sizes = [len(corpus.questions), 10_000] + ([] if quick else [100_000])
    rng = np.random.default_rng(0)
    with scratch_settings() as settings:
        warm_rubric_vectors(settings, corpus)
    for mode in ("embedded", "server"):
        for size in sizes:
            big, ids = _synthetic(corpus, size)
            if mode == "embedded":
                with scratch_settings() as settings:
                    index = QuestionIndex.open(settings)
                    load = _fill(index, big, ids, rng)
                    p50, p99 = _time_selection(Selector(big, index), big, 200)
            else:
                with (
                    tempfile.TemporaryDirectory(prefix="bench-chroma-") as folder,
                    chroma_server(Path(folder)) as (host, port),
                ):
                    settings = Settings(
                        chroma_mode="server",
                        chroma_host=host,
                        chroma_port=port,
                        corpus_dir=REPO_DIR / "corpus",
                    )
                    index = QuestionIndex.open(settings)
                    load = _fill(index, big, ids, rng)
                    p50, p99 = _time_selection(Selector(big, index), big, 200)
            table.add(
                **{
                    "questions": f"{size:,}",
                    "mode": mode,
                    "load s": round(load, 1),
                    "p50 ms": round(p50, 1),
                    "p99 ms": round(p99, 1),
                    "target": "p99 < 50 ms" if size == 10_000 else "-",
                }
            )
    return table


def grading(quick: bool) -> Table:
    table = Table(["grader", "answers", "answers/s", "peak RSS MB", "target"])
    corpus = _corpus()
    with scratch_settings() as settings:
        warm_rubric_vectors(settings, corpus)
    grader = OfflineGrader(REPO_DIR / "prompts")
    items = load_datasets([GRADED])
    pairs = [(resolve(i, corpus), i.answer) for i in items]
    grader.grade_sync(*pairs[0])  # load the model
    started = time.perf_counter()
    for item, answer in pairs:
        grader.grade_sync(item, answer)
    rate = len(pairs) / (time.perf_counter() - started)
    table.add(
        grader="offline, labelled answers (warm)",
        answers=len(pairs),
        **{
            "answers/s": round(rate, 1),
            "peak RSS MB": round(peak_rss_mb()),
            "target": ">= 20/s; set < 60 s",
        },
    )
    return table


def llm(quick: bool) -> Table:
    table = Table(["measurement", "value", "target"])
    corpus = _corpus()
    item = item_from_question(corpus.get("asyncio-vector-db-client"))
    reply = json.dumps(
        {
            "criteria": [
                {
                    "criterion_id": c.id,
                    "reasoning": "ok",
                    "evidence": [],
                    "missed_key_points": [],
                    "score": 3,
                }
                for c in item.rubric.criteria
            ],
            "misconceptions": [],
            "coaching": "Fine. Add rate limiting.",
            "injection_detected": False,
        }
    )
    offline = OfflineGrader(REPO_DIR / "prompts")

    def warm_grader(server: OpenAIStubServer, concurrency: int) -> LLMGrader:
        client = LiteLLMChatModel(
            CallPolicy(
                "openai/stub",
                api_base=server.base_url,
                api_key="sk-bench",
                timeout_s=30,
                max_retries=0,
                concurrency=concurrency,
            )
        )
        grader = LLMGrader(client, REPO_DIR / "prompts", fallback=offline)
        aio.run(grade_many(grader, [(item, "warm up")], concurrency=1))
        return grader

    with OpenAIStubServer(responder=lambda _request: Reply(content=reply, delay_s=1.0)) as slow:
        grader = warm_grader(slow, concurrency=16)
        answers = [(item, f"Answer {i}: semaphores and retries.") for i in range(64)]
        started = time.perf_counter()
        result = aio.run(grade_many(grader, answers, concurrency=16))
        elapsed = time.perf_counter() - started
        assert all(e is not None and not e.is_fallback for e in result.evaluations)
    rate = len(answers) / elapsed
    table.add(
        measurement="answers/s, concurrency 16, 1 s simulated latency",
        value=round(rate, 2),
        target=">= 12/s (limit 16/s)",
    )
    table.add(measurement="ratio to the limit", value=round(rate / 16, 3), target="-")
    with OpenAIStubServer(responder=lambda _request: Reply(content=reply)) as fast:
        grader = warm_grader(fast, concurrency=1)
        samples = []
        for i in range(30):
            started = time.perf_counter()
            aio.run(grader.grade(item, f"Answer {i}: semaphores and retries."))
            samples.append(time.perf_counter() - started)
    p50, p99 = percentiles(samples)
    table.add(
        measurement="local overhead per call, p50 ms (zero simulated latency)",
        value=round(p50, 1),
        target="< 20 ms",
    )
    table.add(measurement="local overhead per call, p99 ms", value=round(p99, 1), target="-")
    return table


def turn(quick: bool) -> Table:
    table = Table(["measurement", "p50 ms", "p99 ms", "target"])
    with scratch_settings() as settings:
        foundation = build_foundation(settings, warm_vectors=False)
        warm_rubric_vectors(settings, foundation.corpus)  # as after a first run
        engine = build_engine(foundation, model="")
        samples = []
        for session in range(4):
            view = engine.start(
                InterviewSetup(
                    role=Role.BACKEND, topics=["asyncio", "exceptions"], length=15, seed=session
                )
            )
            for _ in range(14):
                item = engine.current_item(view.session.id)
                answer = " ".join(split_sentences(item.reference_answer)[:4])
                assert view.current is not None
                started = time.perf_counter()
                view = engine.submit_answer(view.session.id, answer, position=view.current.position)
                samples.append(time.perf_counter() - started)
        p50, p99 = percentiles(samples)
        table.add(
            measurement=f"one turn offline: save, grade, select, phrase, save "
            f"({len(samples)} turns)",
            **{"p50 ms": round(p50, 1), "p99 ms": round(p99, 1), "target": "< 300 ms"},
        )
    return table


_BARE_APP = 'import streamlit as st\nif st.button("Start interview"):\n    st.chat_input("ready")\n'


def _time_app(page: Any, command: list[str], port: int, env: dict[str, str]) -> list[float]:
    """Seconds from process start to: server healthy, start button drawn, chat input drawn."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.02)
        marks = [time.perf_counter() - started]
        page.goto(url)
        button = page.get_by_role("button", name="Start interview")
        button.wait_for(timeout=120_000)
        marks.append(time.perf_counter() - started)
        button.click(timeout=120_000)
        page.locator('[data-testid="stChatInput"] textarea').wait_for(timeout=120_000)
        marks.append(time.perf_counter() - started)
        return marks
    finally:
        process.terminate()
        process.wait(timeout=15)


def app(quick: bool) -> Table:
    """From `interviewer app` to the first question, with the browser already open (as a
    user's is), beside a bare Streamlit app with one button: the floor on this machine."""
    table = Table(["measurement", "interviewer s", "bare Streamlit s", "target"])
    from playwright.sync_api import sync_playwright

    runs = 1 if quick else 3
    with (
        scratch_settings() as settings,
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="bench-app-") as folder,
    ):
        # A warm index and rubric vectors, as after a first run (the warm-up waits here).
        warm_rubric_vectors(settings, build_foundation(settings, warm_vectors=False).corpus)
        bare = Path(folder) / "bare.py"
        bare.write_text(_BARE_APP)
        context = playwright.chromium.launch_persistent_context(
            str(Path(folder) / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
        )
        page = context.new_page()
        env = {**os.environ, "INTERVIEWER_DATA_DIR": str(settings.data_dir)}
        ours, floor = [], []
        for _ in range(runs):
            port = free_port()
            ours.append(
                _time_app(
                    page, [sys.executable, "-m", "app", "app", "--port", str(port)], port, env
                )
            )
            port = free_port()
            floor.append(
                _time_app(
                    page,
                    [
                        sys.executable,
                        "-m",
                        "streamlit",
                        "run",
                        str(bare),
                        "--server.port",
                        str(port),
                        "--server.headless",
                        "true",
                        "--server.address",
                        "127.0.0.1",
                        "--browser.gatherUsageStats",
                        "false",
                        "--server.fileWatcherType",
                        "none",
                    ],
                    port,
                    env,
                )
            )
        context.close()
    labels = [
        "process start -> server healthy",
        "process start -> setup form drawn",
        "process start -> first question on screen (warm index, click included)",
    ]
    for index, label in enumerate(labels):
        table.add(
            **{
                "measurement": f"{label}, median of {runs}",
                "interviewer s": round(float(np.median([r[index] for r in ours])), 2),
                "bare Streamlit s": round(float(np.median([r[index] for r in floor])), 2),
                "target": "< 3 s" if index == 2 else "-",
            }
        )
    return table


def speech(quick: bool) -> Table:
    table = Table(["measurement", "seconds", "target"])
    from app.speech import LocalWhisper

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        table.add(measurement="espeak-ng not installed (make system-deps)", seconds=0.0, target="-")
        return table
    with scratch_settings() as settings, tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        text = (
            "The global interpreter lock lets one thread run Python bytecode at a time, "
            "so for CPU bound work I use processes, and threads or asyncio for I O."
        )
        subprocess.run([espeak, "-s", "150", "-w", str(wav), text], check=True)
        audio = wav.read_bytes()
        whisper = LocalWhisper(settings.models_dir)
        started = time.perf_counter()
        whisper.transcribe(audio, "Compare threads, processes and asyncio.")
        cold = time.perf_counter() - started
        runs = [
            whisper.transcribe(audio, "Compare threads, processes and asyncio.") for _ in range(3)
        ]
        per_ten = float(np.mean([r.seconds_taken / r.duration_s * 10 for r in runs]))
        table.add(
            measurement=f"first transcription incl. model join and load "
            f"({runs[0].duration_s:.1f} s of speech)",
            seconds=round(cold, 2),
            target="-",
        )
        table.add(
            measurement="transcription time per 10 s of speech (warm)",
            seconds=round(per_ten, 2),
            target="< 2 s",
        )
    return table


SECTIONS: dict[str, Callable[[bool], Table]] = {
    "embeddings": embeddings,
    "index": index,
    "selection": selection,
    "grading": grading,
    "llm": llm,
    "turn": turn,
    "app": app,
    "speech": speech,
    "sandbox": sandbox,
}
