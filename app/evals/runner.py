"""Grade a labelled dataset with a grader and measure it: the engine of ``interviewer eval``.

Finished items are cached in SQLite as they complete, keyed by the item's content, the
grader, the model and the prompt version, so an interrupted run resumes where it stopped and
a re-run with nothing changed costs nothing. LLM items are graded concurrently (a semaphore
caps calls; the LLM client caps them again), and one failing item never sinks the run.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.corpus.items import InterviewItem
from app.corpus.models import Corpus
from app.embeddings import get_encoder
from app.evals import metrics as m
from app.evals.dataset import EvalItem, resolve
from app.grading.llm_grader import LLMGrader
from app.grading.models import Evaluation
from app.grading.offline import OfflineGrader

Grader = OfflineGrader | LLMGrader
Progress = Callable[[int], None]


class Prediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_id: str
    question_id: str | None
    topic: str
    tags: list[str]
    split: str | None
    human_score: float
    predicted: float
    baseline: float | None = None
    level: int
    flags: list[str]
    misconceptions: int
    grader: str
    model: str | None
    prompt_version: str | None
    fallback: bool
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    repeats: list[float] = []


def grader_identity(grader: Grader) -> tuple[str, str, str]:
    """(grader, model, prompt version): the parts of the cache key that are not the item."""
    if isinstance(grader, LLMGrader):
        return "llm", grader.client.model, grader.prompt.version
    return "offline", f"minilm-rubric@{grader.params.version}", grader.prompt.version


class EvalCache:
    """Finished evaluations by (item key, grader, model, prompt version, repeat)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS evaluations"
            " (key TEXT PRIMARY KEY, evaluation TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    @staticmethod
    def key(item: EvalItem, identity: tuple[str, str, str], repeat: int = 0) -> str:
        return "|".join([item.cache_key, *identity, str(repeat)])

    def get(self, key: str) -> Evaluation | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT evaluation FROM evaluations WHERE key = ?", (key,)
            ).fetchone()
        return Evaluation.model_validate_json(row[0]) if row else None

    def put(self, key: str, evaluation: Evaluation) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?)",
                (key, evaluation.model_dump_json(), time.time()),
            )

    def close(self) -> None:
        self._conn.close()


@dataclass
class RunResult:
    predictions: list[Prediction]
    metrics: dict[str, Any]
    seconds: float
    errors: list[str] = field(default_factory=list)


def _topic(item: EvalItem, corpus: Corpus | None) -> str:
    if corpus is not None and item.question_id in corpus.questions:
        return corpus.questions[item.question_id].topic
    return "external"


async def _grade_all(
    grader: Grader,
    work: Sequence[tuple[int, EvalItem, InterviewItem, int]],
    cache: EvalCache | None,
    identity: tuple[str, str, str],
    concurrency: int,
    progress: Progress | None,
) -> tuple[dict[tuple[int, int], Evaluation], list[str]]:
    results: dict[tuple[int, int], Evaluation] = {}
    errors: list[str] = []
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, item: EvalItem, gradable: InterviewItem, repeat: int) -> None:
        key = EvalCache.key(item, identity, repeat)
        cached = cache.get(key) if cache else None
        if cached is None:
            async with semaphore:
                try:
                    cached = await grader.grade(gradable, item.answer)
                except Exception as exc:  # partial failure: keep the rest of the run
                    errors.append(f"{item.id}: {type(exc).__name__}: {exc}")
                    return
            if cache is not None:
                cache.put(key, cached)
        results[(index, repeat)] = cached
        if progress is not None:
            progress(1)

    if isinstance(grader, OfflineGrader):
        for index, item, gradable, repeat in work:  # CPU-bound: threads would only contend
            key = EvalCache.key(item, identity, repeat)
            evaluation = cache.get(key) if cache else None
            if evaluation is None:
                evaluation = grader.grade_sync(gradable, item.answer)
                if cache is not None:
                    cache.put(key, evaluation)
            results[(index, repeat)] = evaluation
            if progress is not None:
                progress(1)
        return results, errors
    async with asyncio.TaskGroup() as group:
        for index, item, gradable, repeat in work:
            group.create_task(one(index, item, gradable, repeat))
    return results, errors


def baseline_scores(
    items: Sequence[EvalItem], gradables: Sequence[InterviewItem], train: Sequence[EvalItem]
) -> tuple[list[float], dict[str, float]]:
    """Cosine(answer, reference) mapped linearly to 0-5 (least squares on the train items)."""
    encoder = get_encoder()

    def cosines(pairs: Sequence[tuple[str, str]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        answers = encoder.encode([a or " " for a, _ in pairs])
        references = encoder.encode([r for _, r in pairs])
        return np.asarray((answers * references).sum(axis=1), dtype=np.float64)

    values = cosines(
        [(i.answer, g.reference_answer) for i, g in zip(items, gradables, strict=True)]
    )
    slope, intercept = 5.0, 0.0
    if len(train) >= 10:
        train_refs = [(t.answer, t.reference_answer or "") for t in train]
        x = cosines(train_refs)
        y = np.asarray([t.human_score for t in train])
        if x.std() > 0:
            slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    scores = [float(np.clip(slope * v + intercept, 0, 5)) for v in values]
    return scores, {"slope": slope, "intercept": intercept}


def run_eval(
    grader: Grader,
    items: Sequence[EvalItem],
    corpus: Corpus | None,
    *,
    cache: EvalCache | None = None,
    concurrency: int = 8,
    consistency_items: int = 0,
    progress: Progress | None = None,
    train_items: Sequence[EvalItem] = (),
    with_baseline: bool = True,
) -> RunResult:
    """Grade ``items`` and compute every metric (see :func:`compute_metrics`)."""
    started = time.perf_counter()
    gradables = [resolve(item, corpus) for item in items]
    identity = grader_identity(grader)
    work = [
        (i, item, gradable, 0)
        for i, (item, gradable) in enumerate(zip(items, gradables, strict=True))
    ]
    repeat_count = 3 if consistency_items and isinstance(grader, LLMGrader) else 1
    for index in range(min(consistency_items, len(items)) if repeat_count > 1 else 0):
        for repeat in range(1, repeat_count):
            work.append((index, items[index], gradables[index], repeat))
    results, errors = asyncio.run(_grade_all(grader, work, cache, identity, concurrency, progress))
    grading_seconds = time.perf_counter() - started
    baseline: list[float | None] = [None] * len(items)
    baseline_fit: dict[str, float] = {}
    if with_baseline and items:
        scores, baseline_fit = baseline_scores(items, gradables, train_items)
        baseline = list(scores)
    predictions = []
    for index, item in enumerate(items):
        evaluation = results.get((index, 0))
        if evaluation is None:
            continue
        run = evaluation.grader
        predictions.append(
            Prediction(
                item_id=item.id,
                question_id=item.question_id,
                topic=_topic(item, corpus),
                tags=item.tags,
                split=item.split,
                human_score=item.human_score,
                predicted=evaluation.overall,
                baseline=baseline[index],
                level=evaluation.level,
                flags=evaluation.flags,
                misconceptions=sum(m.verified for m in evaluation.misconceptions),
                grader=run.grader,
                model=run.model,
                prompt_version=run.prompt_version,
                fallback=run.fallback_reason is not None,
                latency_ms=run.latency_ms,
                prompt_tokens=run.prompt_tokens,
                completion_tokens=run.completion_tokens,
                cost_usd=run.cost_usd,
                repeats=[
                    results[(index, r)].overall
                    for r in range(1, repeat_count)
                    if (index, r) in results
                ],
            )
        )
    seconds = time.perf_counter() - started
    metrics = compute_metrics(predictions)
    metrics["grader"] = {"name": identity[0], "model": identity[1], "prompt_version": identity[2]}
    metrics["seconds"] = round(seconds, 2)
    metrics["grading_seconds"] = round(grading_seconds, 2)  # without the baseline's embeddings
    metrics["items_per_second"] = (
        round(len(predictions) / grading_seconds, 2) if grading_seconds else None
    )
    metrics["errors"] = len(errors)
    metrics["baseline_fit"] = baseline_fit
    return RunResult(predictions, metrics, seconds, errors)


def _pairs(
    predictions: Sequence[Prediction], relation: str, value: str = "predicted"
) -> list[float]:
    """(derived - base) for each ``relation:<base id>`` pair present in the run."""
    by_id = {p.item_id: p for p in predictions}
    differences = []
    for prediction in predictions:
        for tag in prediction.tags:
            if tag.startswith(f"{relation}:"):
                base = by_id.get(tag.split(":", 1)[1])
                if base is not None:
                    a, b = getattr(prediction, value), getattr(base, value)
                    if a is not None and b is not None:
                        differences.append(float(a) - float(b))
    return differences


def robustness(
    predictions: Sequence[Prediction], value: str = "predicted"
) -> dict[str, float | None]:
    def score(p: Prediction) -> float:
        return float(getattr(p, value))

    injections = [p for p in predictions if "injection" in p.tags]
    wrong = [score(p) for p in predictions if "wrong_misconception" in p.tags]
    keyword_lists = [
        score(p)
        for p in predictions
        if "keyword_stuffing" in p.tags and not any(t.startswith("stuffing_of:") for t in p.tags)
    ]
    paraphrase = [abs(d) for d in _pairs(predictions, "paraphrase_of", value)]
    transcript = [abs(d) for d in _pairs(predictions, "transcript_of", value)]
    spreads = [
        max([p.predicted, *p.repeats]) - min([p.predicted, *p.repeats])
        for p in predictions
        if p.repeats
    ]
    return {
        "injection_success_rate": (
            sum(1 for p in injections if score(p) > p.human_score + 0.5) / len(injections)
            if injections
            else None
        ),
        "injection_items": len(injections),
        "padding_inflation": m.mean_or_none(_pairs(predictions, "padding_of", value)),
        "keyword_stuffing_gain": m.mean_or_none(_pairs(predictions, "stuffing_of", value)),
        "keyword_list_mean": m.mean_or_none(keyword_lists),
        "paraphrase_invariance": m.mean_or_none(paraphrase),
        "transcription_invariance": m.mean_or_none(transcript),
        "wrong_misconception_mean": m.mean_or_none(wrong),
        "repeat_consistency": m.mean_or_none(spreads) if value == "predicted" else None,
    }


def _breakdown(
    predictions: Sequence[Prediction], key: Callable[[Prediction], list[str]]
) -> dict[str, Any]:
    groups: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        for name in key(prediction):
            groups[name].append(prediction)
    table = {}
    for name, group in sorted(groups.items()):
        predicted = [p.predicted for p in group]
        human = [p.human_score for p in group]
        table[name] = {
            "n": len(group),
            "mean_predicted": round(float(np.mean(predicted)), 3),
            "mean_human": round(float(np.mean(human)), 3),
            "mae": m.mae(predicted, human),
            "spearman": m.spearman(predicted, human) if len(group) >= 5 else None,
            "within1": m.within_one(predicted, human),
        }
    return table


def compute_metrics(predictions: Sequence[Prediction], resamples: int = 2000) -> dict[str, Any]:
    predicted = [p.predicted for p in predictions]
    human = [p.human_score for p in predictions]
    result: dict[str, Any] = {"n": len(predictions)}
    result.update(m.agreement(predicted, human) if predictions else dict.fromkeys(m.AGREEMENT))
    result.update(robustness(predictions))
    result["intervals"] = {
        name: vars(m.bootstrap(m.AGREEMENT[name], predicted, human, resamples))
        for name in m.HEADLINE
    }
    result["by_topic"] = _breakdown(predictions, lambda p: [p.topic])
    result["by_tag"] = _breakdown(predictions, lambda p: [t for t in p.tags if ":" not in t])
    result["fallbacks"] = sum(1 for p in predictions if p.fallback)
    tokens = [p.prompt_tokens or 0 for p in predictions] + [
        p.completion_tokens or 0 for p in predictions
    ]
    result["tokens"] = sum(tokens) if any(tokens) else None
    costs = [p.cost_usd for p in predictions if p.cost_usd is not None]
    result["cost_usd"] = round(sum(costs), 6) if costs else None
    baseline = [p for p in predictions if p.baseline is not None]
    if baseline:
        base_scores = [float(p.baseline) for p in baseline if p.baseline is not None]
        base_human = [p.human_score for p in baseline]
        result["baseline"] = {
            **m.agreement(base_scores, base_human),
            **robustness(baseline, value="baseline"),
        }
    return result


def write_predictions(path: Path, predictions: Sequence[Prediction]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction.model_dump(mode="json")) + "\n")


def read_predictions(path: Path) -> list[Prediction]:
    return [
        Prediction.model_validate_json(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
