"""Fit the offline grader's calibration on the TRAIN split and save it in the package.

    python evals/fit_offline_grader.py            # writes app/grading/offline_params.json

What is fit: the handful of constants in :class:`app.grading.offline.OfflineParams` that turn
similarities into scores (how semantic and word-overlap evidence are mixed, where coverage
starts and saturates, how much a keyword list or a negated sentence is discounted, and the
misconception and contradiction thresholds), plus word rarities (idf) computed from the
corpus. Ten numbers, bounded, fit by coordinate descent on mean squared error against the
human scores; few enough that they cannot memorise the training answers.

Only `split == "train"` items are used for fitting. The dev split is printed for information
(and for choosing between variants of the grader); the test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.config import get_settings
from app.corpus import load_corpus
from app.corpus.items import InterviewItem
from app.evals import metrics as m
from app.evals.dataset import EvalItem, load_datasets, resolve
from app.grading.offline import (
    PARAMS_FILE,
    AnswerAnalysis,
    OfflineParams,
    analyse,
    inverse_document_frequencies,
    score,
)
from app.grading.scoring import overall_score
from app.grading.models import CriterionScore

DATASET = Path(__file__).resolve().parent / "datasets" / "graded"

# name: (low, high) bounds; the search never leaves them.
BOUNDS: dict[str, tuple[float, float]] = {
    "semantic_weight": (0.2, 0.9),
    "semantic_low": (0.05, 0.55),
    "semantic_high": (0.5, 0.95),
    "coverage_low": (0.0, 0.45),
    "coverage_high": (0.35, 0.95),
    "list_floor": (0.0, 0.9),
    "negation_factor": (0.0, 1.0),
    "misconception_threshold": (0.35, 1.01),
    "misconception_margin": (-0.1, 0.2),
    "contradiction_threshold": (0.55, 1.01),
}
STEPS = 9


def predict(
    analysed: Sequence[tuple[InterviewItem, AnswerAnalysis]], params: OfflineParams
) -> np.ndarray:
    predictions = []
    for item, analysis in analysed:
        scored = score(item, analysis, params)
        weights = {c.id: c.weight for c in item.rubric.criteria}
        criteria = [
            CriterionScore(
                criterion_id=p.criterion_id, name=p.criterion_id, weight=weights[p.criterion_id],
                score=min(5.0, max(0.0, p.score)), justification="",
            )
            for p in scored.criteria
        ]
        predictions.append(overall_score(criteria, len(scored.misconceptions)))
    return np.asarray(predictions)


def loss(predicted: np.ndarray, human: np.ndarray) -> float:
    return float(np.mean((predicted - human) ** 2))


def valid(params: dict[str, float]) -> bool:
    return (
        params["semantic_high"] >= params["semantic_low"] + 0.1
        and params["coverage_high"] >= params["coverage_low"] + 0.1
    )


def fit(
    analysed: Sequence[tuple[InterviewItem, AnswerAnalysis]],
    human: np.ndarray,
    start: OfflineParams,
    passes: int = 4,
) -> tuple[OfflineParams, float]:
    current = {name: float(getattr(start, name)) for name in BOUNDS}
    best = loss(predict(analysed, start), human)
    for sweep in range(passes):
        improved = False
        for name, (low, high) in BOUNDS.items():
            span = (high - low) / (2 ** sweep)
            centre = current[name]
            grid = np.clip(np.linspace(centre - span / 2, centre + span / 2, STEPS), low, high)
            for value in grid:
                trial = dict(current, **{name: float(value)})
                if not valid(trial):
                    continue
                candidate = start.model_copy(update=trial)
                value_loss = loss(predict(analysed, candidate), human)
                if value_loss < best - 1e-6:
                    best, current, improved = value_loss, trial, True
        print(f"  pass {sweep + 1}: train MSE {best:.4f}", flush=True)
        if not improved and sweep >= 1:
            break
    return start.model_copy(update=current), best


def report(name: str, predicted: np.ndarray, human: np.ndarray) -> dict[str, float | None]:
    values = {
        "n": float(len(human)),
        "spearman": m.spearman(predicted, human),
        "pearson": m.pearson(predicted, human),
        "qwk": m.quadratic_weighted_kappa(predicted, human),
        "mae": m.mae(predicted, human),
        "within1": m.within_one(predicted, human),
    }
    shown = ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) and k != "n" else f"{k} {int(v or 0)}"
        for k, v in values.items()
    )
    print(f"{name}: {shown}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=[str(DATASET)])
    parser.add_argument("--out", default=str(PARAMS_FILE))
    args = parser.parse_args()

    settings = get_settings()
    corpus = load_corpus(settings.corpus_dir)
    items = load_datasets([Path(p) for p in args.dataset])
    train = [i for i in items if i.split == "train"]
    dev = [i for i in items if i.split == "dev"]
    if len(train) < 50:
        raise SystemExit(f"only {len(train)} train items; run evals/prepare_dataset.py first")
    documents = [
        "\n".join([q.question, q.model_answer, *q.key_points]) for q in corpus.questions.values()
    ]
    start = OfflineParams(idf=inverse_document_frequencies(documents))

    def prepared(chosen: Sequence[EvalItem]) -> list[tuple[InterviewItem, AnswerAnalysis]]:
        result = []
        for item in chosen:
            gradable = resolve(item, corpus)
            result.append((gradable, analyse(gradable, item.answer)))
        return result

    began = time.perf_counter()
    train_analysed = prepared(train)
    dev_analysed = prepared(dev)
    print(f"analysed {len(train)} train and {len(dev)} dev items in "
          f"{time.perf_counter() - began:.1f} s")
    train_human = np.asarray([i.human_score for i in train])
    dev_human = np.asarray([i.human_score for i in dev])
    report("before (train)", predict(train_analysed, start), train_human)
    params, _ = fit(train_analysed, train_human, start)
    train_metrics = report("after (train)", predict(train_analysed, params), train_human)
    dev_metrics = (
        report("after (dev)", predict(dev_analysed, params), dev_human) if dev else {}
    )
    version = time.strftime("%Y%m%d") + f"-train{len(train)}"
    fitted = params.model_copy(
        update={
            "version": version,
            "fit": {
                "script": "evals/fit_offline_grader.py",
                "split": "train",
                "train_items": len(train),
                "train_questions": len({i.question_id for i in train}),
                "objective": "mean squared error of the overall score",
                "train_metrics": train_metrics,
                "dev_metrics": dev_metrics,
                "corpus_version": corpus.version,
            },
        }
    )
    Path(args.out).write_text(json.dumps(fitted.model_dump(), indent=1, sort_keys=True) + "\n")
    print(f"saved {args.out} (version {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
