"""Grade a labelled dataset with a grader and measure it: the engine of ``interviewer eval``.

Any registered grader runs through the same path: :func:`app.grading.grade_many` grades the
items (concurrently, with a cap, one failing item never sinking the run), and each finished
item is cached in SQLite as it completes, keyed by the item's content and the grader's
identity (name, model, prompt version), so an interrupted run resumes where it stopped and a
re-run with nothing changed costs nothing. A baseline grader (the cosine one) runs over the
same items through the same path, and its scores sit beside the grader's in every report.
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
from app.evals import metrics as m
from app.evals.dataset import EvalItem, resolve
from app.grading import Grader, GraderIdentity, grade_many
from app.grading.models import Evaluation

Progress = Callable[[int], None]
REPEATS = 3  # gradings of each consistency item, for the repeat-consistency metric


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
    def key(item: EvalItem, identity: GraderIdentity, repeat: int = 0) -> str:
        parts = (identity.name, identity.model or "", identity.prompt_version or "")
        return "|".join([item.cache_key, *parts, str(repeat)])

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


@dataclass(frozen=True)
class _Work:
    index: int  # of the item in the run
    item: EvalItem
    gradable: InterviewItem
    repeat: int = 0


def _grade(
    grader: Grader,
    work: Sequence[_Work],
    cache: EvalCache | None,
    concurrency: int,
    progress: Progress | None,
) -> tuple[dict[tuple[int, int], Evaluation], list[str]]:
    """Every piece of work graded (from the cache where it is there), by (index, repeat)."""
    identity = grader.identity
    keys = [EvalCache.key(w.item, identity, w.repeat) for w in work]
    results: dict[tuple[int, int], Evaluation] = {}
    todo: list[int] = []
    for number, (piece, key) in enumerate(zip(work, keys, strict=True)):
        cached = cache.get(key) if cache is not None else None
        if cached is None:
            todo.append(number)
            continue
        results[(piece.index, piece.repeat)] = cached
        if progress is not None:
            progress(1)

    def finished(position: int, evaluation: Evaluation) -> None:
        number = todo[position]
        if cache is not None:
            cache.put(keys[number], evaluation)
        results[(work[number].index, work[number].repeat)] = evaluation
        if progress is not None:
            progress(1)

    pairs = [(work[n].gradable, work[n].item.answer) for n in todo]
    batch = asyncio.run(grade_many(grader, pairs, concurrency, on_result=finished))
    errors = [
        f"{work[todo[position]].item.id}: {type(exc).__name__}: {exc}"
        for position, exc in batch.errors
    ]
    return results, errors


def _identity(identity: GraderIdentity) -> dict[str, str | None]:
    return {
        "name": identity.name,
        "model": identity.model,
        "prompt_version": identity.prompt_version,
    }


def run_eval(
    grader: Grader,
    items: Sequence[EvalItem],
    corpus: Corpus | None,
    *,
    cache: EvalCache | None = None,
    concurrency: int = 8,
    consistency_items: int = 0,
    progress: Progress | None = None,
    baseline: Grader | None = None,
) -> RunResult:
    """Grade ``items`` with ``grader`` (and ``baseline``, if given) and compute every metric
    (see :func:`compute_metrics`). The first ``consistency_items`` items are graded
    :data:`REPEATS` times, to measure how much the grader's scores vary."""
    started = time.perf_counter()
    work = [_Work(i, item, resolve(item, corpus)) for i, item in enumerate(items)]
    repeats = REPEATS if consistency_items else 1
    for piece in work[: min(consistency_items, len(work))] if repeats > 1 else []:
        work += [_Work(piece.index, piece.item, piece.gradable, r) for r in range(1, repeats)]
    results, errors = _grade(grader, work, cache, concurrency, progress)
    grading_seconds = time.perf_counter() - started
    baseline_scores: dict[int, float] = {}
    if baseline is not None and items:
        first = [w for w in work if w.repeat == 0]
        base_results, base_errors = _grade(baseline, first, cache, concurrency, None)
        baseline_scores = {index: e.overall for (index, _), e in base_results.items()}
        errors += [f"baseline {error}" for error in base_errors]
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
                baseline=baseline_scores.get(index),
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
                    results[(index, r)].overall for r in range(1, repeats) if (index, r) in results
                ],
            )
        )
    seconds = time.perf_counter() - started
    metrics = compute_metrics(predictions)
    metrics["grader"] = _identity(grader.identity)
    metrics["seconds"] = round(seconds, 2)
    metrics["grading_seconds"] = round(grading_seconds, 2)  # without the baseline's grading
    metrics["items_per_second"] = (
        round(len(predictions) / grading_seconds, 2) if grading_seconds else None
    )
    metrics["errors"] = len(errors)
    if baseline is not None:
        metrics["baseline_grader"] = _identity(baseline.identity)
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
