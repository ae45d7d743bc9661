"""Fit the offline grader's calibration on the TRAIN split and save it in the package.

    python evals/fit_offline_grader.py            # writes app/grading/offline_params.json

What is fit (see :class:`app.grading.offline.OfflineParams`):

1. the criterion model: ``score = 5 * sigmoid(bias + features . weights)`` over six bounded
   features of a criterion's key-point coverage (``FEATURES``), fit by least squares (with a
   small L2 penalty) against the human per-criterion scores;
2. the feature transforms: where semantic similarity starts and saturates, how semantic and
   word-overlap evidence mix, and how much keyword lists and negated sentences are
   discounted, by coordinate descent on the overall score's squared error;
3. the misconception detector's three thresholds, the same way.

About fifteen numbers in all, bounded, so they cannot memorise the training answers; word
rarities (idf) come from the corpus, not the labels. Only `split == "train"` items are used for
fitting. The dev split is printed for information and for choosing between grader variants;
the test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import get_settings
from app.corpus import load_corpus
from app.corpus.items import InterviewItem
from app.evals import metrics as m
from app.evals.dataset import EvalItem, load_datasets, resolve
from app.grading.models import CriterionScore
from app.grading.offline import (
    FEATURES,
    PARAMS_FILE,
    AnswerAnalysis,
    OfflineParams,
    _misconceptions,
    analyse,
    criterion_evidence,
    criterion_scores,
    inverse_document_frequencies,
)
from app.grading.scoring import overall_score

DATASET = Path(__file__).resolve().parent / "datasets" / "graded"

TRANSFORMS: dict[str, tuple[float, float]] = {
    "semantic_weight": (0.2, 0.9),
    "semantic_low": (0.05, 0.55),
    "semantic_high": (0.5, 0.95),
    "lexical_high": (0.3, 1.0),
    "list_floor": (0.0, 0.9),
    "negation_factor": (0.0, 1.0),
}
DETECTOR: dict[str, tuple[float, float]] = {
    "misconception_threshold": (0.4, 0.8),
    "misconception_margin": (-0.05, 0.15),
    "misconception_lexical": (0.2, 0.8),
}
STEPS = 7
L2 = 0.01


@dataclass
class Example:
    eval_item: EvalItem
    item: InterviewItem
    analysis: AnswerAnalysis


def features_and_targets(
    examples: Sequence[Example], params: OfflineParams
) -> tuple[np.ndarray, np.ndarray]:
    rows, targets = [], []
    for example in examples:
        scores = example.eval_item.criterion_scores
        if not scores or example.analysis.empty:
            continue
        features = criterion_evidence(example.item, example.analysis, params).features
        for index, criterion in enumerate(example.item.rubric.criteria):
            if criterion.id in scores:
                rows.append(features[index])
                targets.append(scores[criterion.id])
    return np.asarray(rows), np.asarray(targets, dtype=np.float64)


def fit_criterion_model(x: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    """Least squares of 5*sigmoid(b + x.w) against y, by gradient descent with momentum."""
    weights = np.zeros(x.shape[1])
    bias = 0.0
    velocity_w, velocity_b = np.zeros_like(weights), 0.0
    rate, momentum = 0.5, 0.9
    for _ in range(3000):
        z = np.clip(bias + x @ weights, -30, 30)
        s = 1.0 / (1.0 + np.exp(-z))
        error = 5.0 * s - y
        grad_z = error * 5.0 * s * (1 - s) / len(y)
        grad_w = x.T @ grad_z + L2 * weights
        grad_b = float(grad_z.sum())
        velocity_w = momentum * velocity_w - rate * grad_w / 25.0
        velocity_b = momentum * velocity_b - rate * grad_b / 25.0
        weights = weights + velocity_w
        bias += velocity_b
    return [round(float(w), 5) for w in weights], round(float(bias), 5)


def predict(examples: Sequence[Example], params: OfflineParams) -> np.ndarray:
    predictions = []
    for example in examples:
        if example.analysis.empty:
            predictions.append(0.0)
            continue
        evidence = criterion_evidence(example.item, example.analysis, params)
        values = criterion_scores(evidence.features, params)
        criteria = [
            CriterionScore(
                criterion_id=c.id, name=c.id, weight=c.weight, score=float(v), justification=""
            )
            for c, v in zip(example.item.rubric.criteria, values, strict=True)
        ]
        found = _misconceptions(example.item, example.analysis, params)
        predictions.append(overall_score(criteria, len(found)))
    return np.asarray(predictions)


def mse(examples: Sequence[Example], params: OfflineParams) -> float:
    human = np.asarray([e.eval_item.human_score for e in examples])
    return float(np.mean((predict(examples, params) - human) ** 2))


def with_criterion_model(examples: Sequence[Example], params: OfflineParams) -> OfflineParams:
    x, y = features_and_targets(examples, params)
    weights, bias = fit_criterion_model(x, y)
    return params.model_copy(update={"criterion_weights": weights, "criterion_bias": bias})


def valid(params: OfflineParams) -> bool:
    return params.semantic_high >= params.semantic_low + 0.1


def coordinate_descent(
    examples: Sequence[Example],
    params: OfflineParams,
    bounds: dict[str, tuple[float, float]],
    refit_model: bool,
    passes: int,
) -> OfflineParams:
    best = mse(examples, params)
    for sweep in range(passes):
        for name, (low, high) in bounds.items():
            span = (high - low) / (2**sweep)
            centre = float(getattr(params, name))
            for value in np.clip(
                np.linspace(centre - span / 2, centre + span / 2, STEPS), low, high
            ):
                trial = params.model_copy(update={name: float(value)})
                if not valid(trial):
                    continue
                if refit_model:
                    trial = with_criterion_model(examples, trial)
                loss = mse(examples, trial)
                if loss < best - 1e-6:
                    best, params = loss, trial
        print(
            f"  {'transforms' if refit_model else 'detector'} pass {sweep + 1}: "
            f"train MSE {best:.4f}",
            flush=True,
        )
    return params


def report(
    name: str, examples: Sequence[Example], params: OfflineParams
) -> dict[str, float | None]:
    predicted = predict(examples, params)
    human = np.asarray([e.eval_item.human_score for e in examples])
    values = {
        "spearman": m.spearman(predicted, human),
        "pearson": m.pearson(predicted, human),
        "qwk": m.quadratic_weighted_kappa(predicted, human),
        "mae": m.mae(predicted, human),
        "within1": m.within_one(predicted, human),
    }
    shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if v is not None)
    print(f"{name} (n={len(examples)}): {shown}", flush=True)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=[str(DATASET)])
    parser.add_argument("--out", default=str(PARAMS_FILE))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    settings = get_settings()
    corpus = load_corpus(settings.corpus_dir)
    items = load_datasets([Path(p) for p in args.dataset])
    train_items = [i for i in items if i.split == "train"]
    dev_items = [i for i in items if i.split == "dev"]
    if len(train_items) < 50:
        raise SystemExit(f"only {len(train_items)} train items; run evals/prepare_dataset.py")
    documents = [
        "\n".join([q.question, q.model_answer, *q.key_points]) for q in corpus.questions.values()
    ]
    params = OfflineParams(idf=inverse_document_frequencies(documents))

    began = time.perf_counter()

    def prepared(chosen: Sequence[EvalItem]) -> list[Example]:
        examples = []
        for eval_item in chosen:
            item = resolve(eval_item, corpus)
            examples.append(Example(eval_item, item, analyse(item, eval_item.answer)))
        return examples

    train, dev = prepared(train_items), prepared(dev_items)
    print(
        f"analysed {len(train)} train and {len(dev)} dev items in "
        f"{time.perf_counter() - began:.1f} s",
        flush=True,
    )
    params = with_criterion_model(train, params)
    report("start (train)", train, params)
    for round_index in range(args.rounds):
        passes = 3 if round_index == 0 else 2
        params = coordinate_descent(train, params, TRANSFORMS, refit_model=True, passes=passes)
        params = coordinate_descent(train, params, DETECTOR, refit_model=False, passes=passes)
    train_metrics = report("fitted (train)", train, params)
    dev_metrics = report("fitted (dev)", dev, params) if dev else {}
    version = time.strftime("%Y%m%d") + f"-train{len(train)}"
    fitted = params.model_copy(
        update={
            "version": version,
            "fit": {
                "script": "evals/fit_offline_grader.py",
                "split": "train",
                "train_items": len(train),
                "train_questions": len({e.eval_item.question_id for e in train}),
                "features": list(FEATURES),
                "objective": "criterion model: squared error on human criterion scores; "
                "transforms and detector: squared error of the overall score",
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
