"""``interviewer eval`` (grade a labelled set), ``eval compare`` and ``eval simulate``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from app.config import REPO_DIR, Settings
from app.evals.runner import REPEATS
from app.grading import available

DEFAULT_DATASET = REPO_DIR / "evals" / "datasets" / "graded"
DEFAULT_CONSISTENCY_ITEMS = 20


BASELINE = "cosine"  # the grader whose row every report shows beside the graded one


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from app.corpus import load_corpus
    from app.errors import ConfigError
    from app.evals.dataset import CsvColumns, load_datasets, select
    from app.evals.report import write_run
    from app.evals.runner import EvalCache, run_eval
    from app.grading import GraderContext, make_grader
    from app.services import warm_rubric_vectors

    if args.concurrency:
        settings = settings.model_copy(update={"llm_concurrency": args.concurrency})
    context = GraderContext.from_settings(settings, model=args.model)
    try:
        grader = make_grader(args.grader, context)
    except ConfigError as exc:  # e.g. the llm grader without a model: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baseline = (
        None if args.no_baseline or args.grader == BASELINE else make_grader(BASELINE, context)
    )
    columns = CsvColumns(
        question=args.csv_question,
        reference_answer=args.csv_reference,
        answer=args.csv_answer,
        score=args.csv_score,
        score_max=args.csv_score_max,
        id=args.csv_id,
    )
    items = load_datasets([Path(p) for p in args.dataset], columns)
    chosen = select(items, args.split, args.limit)
    if not chosen:
        print(f"error: no items in split {args.split!r}", file=sys.stderr)
        return 2
    corpus = load_corpus(settings.corpus_dir, settings.corpus_packs)
    warm_rubric_vectors(settings, corpus)  # embedded once, kept on disk
    cache = None if args.no_cache else EvalCache(settings.cache_dir / "eval-cache.sqlite3")
    consistency = args.consistency_items
    if consistency is None:  # repeat gradings measure a sampled model; free graders repeat none
        consistency = DEFAULT_CONSISTENCY_ITEMS if grader.capabilities.costs_money else 0
    total = len(chosen) + (REPEATS - 1) * min(consistency, len(chosen))
    with tqdm(total=total, unit="item", desc=f"grading ({args.grader})", disable=args.quiet) as bar:
        result = run_eval(
            grader,
            chosen,
            corpus,
            cache=cache,
            concurrency=args.concurrency or settings.llm_concurrency,
            consistency_items=consistency,
            progress=bar.update,
            baseline=baseline,
        )
    out = (
        Path(args.out)
        if args.out
        else (
            REPO_DIR
            / "evals"
            / "runs"
            / f"{args.grader}-{args.split}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
    )
    write_run(result, out, f"Grading eval: {args.grader} on {args.split} ({len(chosen)} items)")
    metrics = result.metrics
    shown: dict[str, Any] = metrics.get("baseline", {})
    with_baseline = f"; {metrics['seconds']} s with the {BASELINE} baseline" if baseline else ""
    print(
        f"{metrics['n']} items graded in {metrics['grading_seconds']} s "
        f"({metrics['items_per_second']}/s{with_baseline}) -> {out}"
    )
    for key in (
        "pearson",
        "spearman",
        "qwk",
        "mae",
        "within1",
        "injection_success_rate",
        "padding_inflation",
        "keyword_stuffing_gain",
        "paraphrase_invariance",
        "wrong_misconception_mean",
    ):
        value, base = metrics.get(key), shown.get(key)
        text = "n/a" if value is None else f"{value:.3f}"
        base_text = "n/a" if base is None else f"{base:.3f}"
        print(f"  {key:26s} {text:>8s}" + (f"   ({BASELINE} {base_text})" if baseline else ""))
    if result.errors:
        print(f"{len(result.errors)} item(s) failed; see {out / 'errors.txt'}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace, settings: Settings) -> int:
    from app.evals.report import compare_runs

    for run in (args.run_a, args.run_b):
        if not (Path(run) / "predictions.jsonl").is_file():
            print(f"error: {run} is not an eval run folder (no predictions.jsonl)", file=sys.stderr)
            return 2
    print(compare_runs(Path(args.run_a), Path(args.run_b)))
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from app.evals.simulate import run_simulations, write_simulation_report

    result = run_simulations(settings, runs_per_persona=args.runs, length=args.length)
    out = Path(args.out) if args.out else REPO_DIR / "evals" / "runs" / "simulate"
    write_simulation_report(result, out)
    print(result.summary())
    return 0 if result.all_passed(args.min_pass_rate) else 1


def add_eval_commands(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="measure grading quality on labelled answers (see evals/README.md)",
        description="Grade a labelled dataset and report agreement and robustness metrics.",
    )
    evaluate.add_argument("--grader", choices=available(), default="offline")
    evaluate.add_argument(
        "--model", help="model for --grader llm: a litellm model string, or 'mock'"
    )
    evaluate.add_argument(
        "--dataset",
        nargs="+",
        default=[str(DEFAULT_DATASET)],
        help="JSONL/CSV files or folders of *.jsonl (default: the labelled set)",
    )
    evaluate.add_argument("--split", default="test", choices=["train", "dev", "test", "all"])
    evaluate.add_argument("--limit", type=int, help="grade at most this many items")
    evaluate.add_argument("--concurrency", type=int, help="concurrent LLM calls")
    evaluate.add_argument(
        "--consistency-items",
        type=int,
        default=None,
        help=f"grade this many items {REPEATS} times to measure repeat consistency "
        f"(default: {DEFAULT_CONSISTENCY_ITEMS} for graders that call a paid model, else 0)",
    )
    evaluate.add_argument(
        "--out", help="output folder (default: evals/runs/<grader>-<split>-<time>)"
    )
    evaluate.add_argument(
        "--no-cache", action="store_true", help="ignore and do not fill the cache"
    )
    evaluate.add_argument(
        "--no-baseline", action="store_true", help=f"do not grade with the {BASELINE} baseline"
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    csv = evaluate.add_argument_group("CSV datasets (column mapping)")
    csv.add_argument("--csv-question", default="question")
    csv.add_argument("--csv-reference", default="desired_answer")
    csv.add_argument("--csv-answer", default="student_answer")
    csv.add_argument("--csv-score", default="score")
    csv.add_argument("--csv-score-max", type=float, default=5.0)
    csv.add_argument("--csv-id", default=None)
    evaluate.set_defaults(handler=_run)

    actions = evaluate.add_subparsers(dest="eval_command", metavar="[compare|simulate]")
    compare = actions.add_parser("compare", help="compare two eval runs")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.set_defaults(handler=_compare)

    simulate = actions.add_parser(
        "simulate", help="simulated interviews with scripted personas (interviewer quality)"
    )
    simulate.add_argument("--runs", type=int, default=3, help="sessions per persona")
    simulate.add_argument("--length", type=int, default=8)
    simulate.add_argument("--min-pass-rate", type=float, default=0.8)
    simulate.add_argument("--out")
    simulate.set_defaults(handler=_simulate)
