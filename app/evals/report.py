"""Eval run outputs: metrics.json, predictions.jsonl, a Markdown report and PNG plots; and the
comparison of two runs with paired bootstrap intervals on the differences."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.bands import PASS
from app.evals import metrics as m
from app.evals.runner import Prediction, RunResult, read_predictions, write_predictions

HEADLINE_ROWS = [
    ("n", "items"),
    ("pearson", "Pearson r"),
    ("spearman", "Spearman rho"),
    ("qwk", "Quadratic weighted kappa"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("exact", "Exact agreement (levels)"),
    ("within1", "Within-1 agreement"),
    ("pass_fail", f"Pass/fail agreement (>= {PASS:g})"),
]
ROBUSTNESS_ROWS = [
    ("injection_success_rate", "Injection success rate"),
    ("padding_inflation", "Padding inflation (points)"),
    ("keyword_stuffing_gain", "Keyword-stuffing gain (points)"),
    ("keyword_list_mean", "Mean score of bare keyword lists"),
    ("paraphrase_invariance", "Paraphrase invariance (mean |diff|)"),
    ("transcription_invariance", "Typed vs transcribed (mean |diff|)"),
    ("wrong_misconception_mean", "Mean score, wrong with misconception"),
    ("repeat_consistency", "Repeat consistency (mean spread of 3)"),
]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _interval(metrics: dict[str, Any], name: str) -> str:
    interval = metrics.get("intervals", {}).get(name)
    if not interval or interval.get("low") is None:
        return ""
    return f"[{interval['low']:.3f}, {interval['high']:.3f}]"


def markdown_report(metrics: dict[str, Any], title: str) -> str:
    grader = metrics.get("grader", {})
    baseline = metrics.get("baseline", {})
    base_name = f"baseline ({metrics.get('baseline_grader', {}).get('name', 'none')})"
    lines = [
        f"# {title}",
        "",
        f"Grader: **{grader.get('name')}**, model `{grader.get('model')}`, prompt "
        f"`{grader.get('prompt_version')}`. {metrics.get('n')} items graded in "
        f"{metrics.get('grading_seconds')} s ({metrics.get('items_per_second')} items/s; "
        f"{metrics.get('seconds')} s in all); "
        f"{metrics.get('errors', 0)} error(s), {metrics.get('fallbacks', 0)} fallback(s).",
        "",
        "## Agreement with human scores",
        "",
        f"| metric | grader | 95% CI | {base_name} |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in HEADLINE_ROWS:
        lines.append(
            f"| {label} | {_fmt(metrics.get(key))} | {_interval(metrics, key)} | "
            f"{_fmt(baseline.get(key)) if key != 'n' else ''} |"
        )
    lines += [
        "",
        "## Robustness",
        "",
        f"| metric | grader | {base_name} |",
        "| --- | --- | --- |",
    ]
    for key, label in ROBUSTNESS_ROWS:
        lines.append(f"| {label} | {_fmt(metrics.get(key))} | {_fmt(baseline.get(key))} |")
    if metrics.get("tokens") or metrics.get("cost_usd"):
        lines += ["", f"Tokens: {metrics.get('tokens')}; cost: {metrics.get('cost_usd')} USD."]
    for section, key in (("By topic", "by_topic"), ("By tag", "by_tag")):
        lines += [
            "",
            f"## {section}",
            "",
            "| group | n | mean predicted | mean human | MAE | Spearman | within-1 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, row in metrics.get(key, {}).items():
            lines.append(
                f"| {name} | {row['n']} | {_fmt(row['mean_predicted'], 2)} | "
                f"{_fmt(row['mean_human'], 2)} | {_fmt(row['mae'], 2)} | "
                f"{_fmt(row['spearman'], 2)} | {_fmt(row['within1'], 2)} |"
            )
    lines += [
        "",
        "Plots: `scatter.png` (predicted vs human), `confusion.png` (levels), `topics.png`.",
    ]
    return "\n".join(lines) + "\n"


def plot(predictions: Sequence[Prediction], metrics: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    human = np.array([p.human_score for p in predictions])
    predicted = np.array([p.predicted for p in predictions])
    paths = []

    figure, axes = plt.subplots(figsize=(5.5, 5))
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(human))
    axes.scatter(human + jitter, predicted, s=14, alpha=0.6)
    axes.plot([0, 5], [0, 5], color="grey", linestyle="--", label="identity")
    axes.set(
        xlabel="human score",
        ylabel="predicted score",
        xlim=(-0.3, 5.3),
        ylim=(-0.3, 5.3),
        title=f"Predicted vs human (n={len(human)}, rho={_fmt(metrics.get('spearman'), 2)})",
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    paths.append(out / "scatter.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    matrix = np.zeros((m.LEVELS, m.LEVELS), dtype=int)
    for h, p in zip(m.levels(human), m.levels(predicted), strict=True):
        matrix[h, p] += 1
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if count > matrix.max() / 2 else "black",
            )
    axes.set(
        xlabel="predicted level",
        ylabel="human level",
        title="Confusion matrix (levels)",
        xticks=range(6),
        yticks=range(6),
    )
    figure.tight_layout()
    paths.append(out / "confusion.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    topics = metrics.get("by_topic", {})
    names = list(topics)
    figure, axes = plt.subplots(figsize=(8, max(3.0, 0.35 * len(names) + 1)))
    y = np.arange(len(names))
    axes.barh(y - 0.2, [topics[n]["mean_human"] for n in names], height=0.4, label="human")
    axes.barh(y + 0.2, [topics[n]["mean_predicted"] for n in names], height=0.4, label="predicted")
    axes.set_yticks(y, names)
    axes.set(xlabel="mean score", title="Mean score per topic", xlim=(0, 5))
    axes.legend()
    figure.tight_layout()
    paths.append(out / "topics.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths


def write_run(result: RunResult, out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=float) + "\n")
    write_predictions(out / "predictions.jsonl", result.predictions)
    (out / "report.md").write_text(markdown_report(result.metrics, title))
    if result.errors:
        (out / "errors.txt").write_text("\n".join(result.errors) + "\n")
    if result.predictions:
        plot(result.predictions, result.metrics, out)


def compare_runs(run_a: Path, run_b: Path, resamples: int = 2000) -> str:
    """A table of headline metrics for two runs and B - A with a paired bootstrap 95% CI on
    the items both runs graded."""
    a = {p.item_id: p for p in read_predictions(run_a / "predictions.jsonl")}
    b = {p.item_id: p for p in read_predictions(run_b / "predictions.jsonl")}
    common = sorted(set(a) & set(b))
    if not common:
        return "The two runs share no items."
    human = np.array([a[i].human_score for i in common])
    pa = np.array([a[i].predicted for i in common])
    pb = np.array([b[i].predicted for i in common])
    rng = np.random.default_rng(0)
    lines = [
        f"Comparing {run_a} (A) and {run_b} (B) on {len(common)} common items",
        "",
        "| metric | A | B | B - A | 95% CI of B - A |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("pearson", "spearman", "qwk", "mae", "rmse", "within1", "exact"):
        metric = m.AGREEMENT[name]
        value_a, value_b = metric(pa, human), metric(pb, human)
        differences = []
        for _ in range(resamples):
            sample = rng.integers(0, len(common), len(common))
            da, db = metric(pa[sample], human[sample]), metric(pb[sample], human[sample])
            if da is not None and db is not None:
                differences.append(db - da)
        interval = (
            f"[{np.percentile(differences, 2.5):+.3f}, {np.percentile(differences, 97.5):+.3f}]"
            if len(differences) > resamples // 2
            else "n/a"
        )
        delta = None if value_a is None or value_b is None else value_b - value_a
        lines.append(
            f"| {name} | {_fmt(value_a)} | {_fmt(value_b)} | "
            f"{'n/a' if delta is None else f'{delta:+.3f}'} | {interval} |"
        )
    metrics_a = json.loads((run_a / "metrics.json").read_text())
    metrics_b = json.loads((run_b / "metrics.json").read_text())
    lines += ["", "| robustness | A | B |", "| --- | --- | --- |"]
    for key, label in ROBUSTNESS_ROWS:
        lines.append(f"| {label} | {_fmt(metrics_a.get(key))} | {_fmt(metrics_b.get(key))} |")
    return "\n".join(lines) + "\n"
