"""Agreement and robustness metrics for graders, as small functions over score arrays.

Each agreement metric takes predicted and human scores (0-5) and returns a float, or None
when it is undefined (too few items, no variance). :func:`bootstrap` turns any of them into
a 95% confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.bands import PASS

Scores = Sequence[float] | npt.NDArray[np.float64]
Metric = Callable[[Scores, Scores], float | None]
LEVELS = 6  # 0..5


def _arrays(predicted: Scores, human: Scores) -> tuple[npt.NDArray[np.float64], ...]:
    p = np.asarray(predicted, dtype=np.float64)
    h = np.asarray(human, dtype=np.float64)
    if p.shape != h.shape:
        raise ValueError(f"predicted and human scores differ in length: {p.shape} vs {h.shape}")
    return p, h


def levels(scores: Scores) -> npt.NDArray[np.int64]:
    """Whole levels 0-5, halves rounding up (the same rule as the evaluation's level)."""
    return np.clip(np.floor(np.asarray(scores, dtype=np.float64) + 0.5), 0, 5).astype(np.int64)


def pearson(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    if len(p) < 3 or p.std() == 0 or h.std() == 0:
        return None
    return float(np.corrcoef(p, h)[0, 1])


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0
        start = end + 1
    return ranks


def spearman(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    if len(p) < 3:
        return None
    return pearson(_ranks(p), _ranks(h))


def quadratic_weighted_kappa(predicted: Scores, human: Scores) -> float | None:
    """Cohen's kappa with quadratic weights on whole levels 0-5."""
    p, h = _arrays(predicted, human)
    if len(p) < 2:
        return None
    a, b = levels(p), levels(h)
    observed = np.zeros((LEVELS, LEVELS))
    for i, j in zip(a, b, strict=True):
        observed[i, j] += 1
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    grid = np.arange(LEVELS)
    weights = (grid[:, None] - grid[None, :]) ** 2 / (LEVELS - 1) ** 2
    denominator = float((weights * expected).sum())
    if denominator == 0:
        return None
    return 1.0 - float((weights * observed).sum()) / denominator


def mae(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    return float(np.mean(np.abs(p - h))) if len(p) else None


def rmse(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    return float(np.sqrt(np.mean((p - h) ** 2))) if len(p) else None


def exact_agreement(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    return float(np.mean(levels(p) == levels(h))) if len(p) else None


def within_one(predicted: Scores, human: Scores) -> float | None:
    p, h = _arrays(predicted, human)
    return float(np.mean(np.abs(levels(p) - levels(h)) <= 1)) if len(p) else None


def pass_fail_agreement(predicted: Scores, human: Scores, threshold: float = PASS) -> float | None:
    p, h = _arrays(predicted, human)
    return float(np.mean((p >= threshold) == (h >= threshold))) if len(p) else None


AGREEMENT: dict[str, Metric] = {
    "pearson": pearson,
    "spearman": spearman,
    "qwk": quadratic_weighted_kappa,
    "mae": mae,
    "rmse": rmse,
    "exact": exact_agreement,
    "within1": within_one,
    "pass_fail": pass_fail_agreement,
}
HEADLINE = ("pearson", "spearman", "qwk", "mae", "within1")


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None


def bootstrap(
    metric: Metric,
    predicted: Scores,
    human: Scores,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """A 95% percentile bootstrap interval (items resampled with replacement)."""
    p, h = _arrays(predicted, human)
    if len(p) < 5:
        return Interval(None, None)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        sample = rng.integers(0, len(p), len(p))
        value = metric(p[sample], h[sample])
        if value is not None and np.isfinite(value):
            values.append(value)
    if len(values) < resamples // 2:
        return Interval(None, None)
    return Interval(float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def agreement(predicted: Scores, human: Scores) -> dict[str, float | None]:
    return {name: metric(predicted, human) for name, metric in AGREEMENT.items()}


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None
