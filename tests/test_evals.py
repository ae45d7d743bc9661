"""Eval machinery: metrics, dataset loading, the runner's cache and reports, compare, the
regression gate on the test split, and simulated interviews."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.config import REPO_DIR
from app.corpus import Corpus
from app.evals import metrics as m
from app.evals.dataset import (
    CsvColumns,
    DatasetError,
    EvalItem,
    load_csv,
    load_datasets,
    load_jsonl,
)
from app.evals.runner import EvalCache, compute_metrics, read_predictions, run_eval
from app.grading.offline import OfflineGrader

from .conftest import write_json_lines

GRADED = REPO_DIR / "evals" / "datasets" / "graded"
BASELINE = REPO_DIR / "evals" / "baselines" / "offline-test.json"


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_on_known_values() -> None:
    human = [0, 1, 2, 3, 4, 5]
    assert m.pearson(human, human) == pytest.approx(1.0)
    assert m.spearman([1, 2, 3, 4, 5, 6], human) == pytest.approx(1.0)
    assert m.spearman([6, 5, 4, 3, 2, 1], human) == pytest.approx(-1.0)
    assert m.quadratic_weighted_kappa(human, human) == pytest.approx(1.0)
    assert m.mae([1, 1], [0, 2]) == 1.0 and m.rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    assert m.within_one([0, 2.6, 5], [1, 1, 5]) == pytest.approx(2 / 3)
    assert m.exact_agreement([2.5, 2.4], [3, 2]) == 1.0  # levels round half up
    assert m.pass_fail_agreement([3.0, 2.9], [3.5, 3.1]) == 0.5
    assert m.pearson([1, 1, 1], [1, 2, 3]) is None  # no variance: undefined, not 0


def test_spearman_handles_ties_like_the_textbook() -> None:
    # ranks with ties averaged: x -> [1.5, 1.5, 3, 4], y -> [1, 2, 3, 4]
    expected = np.corrcoef([1.5, 1.5, 3, 4], [1, 2, 3, 4])[0, 1]
    assert m.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)


def test_qwk_matches_a_hand_computed_example() -> None:
    # 2 levels used out of 6: observed agreement except one swap
    predicted, human = [0, 0, 5, 5], [0, 5, 5, 5]
    observed = np.zeros((6, 6))
    for a, b in zip(predicted, human, strict=True):
        observed[a, b] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / 4
    weights = np.array([[(i - j) ** 2 / 25 for j in range(6)] for i in range(6)])
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert m.quadratic_weighted_kappa(predicted, human) == pytest.approx(kappa)


def test_bootstrap_interval_contains_the_estimate() -> None:
    rng = np.random.default_rng(1)
    human = rng.uniform(0, 5, 200)
    predicted = human + rng.normal(0, 0.7, 200)
    interval = m.bootstrap(m.spearman, predicted, human, resamples=500)
    value = m.spearman(predicted, human)
    assert interval.low is not None and interval.high is not None and value is not None
    assert interval.low < value < interval.high and interval.high - interval.low < 0.2


# -- datasets -----------------------------------------------------------------------------------
def test_labelled_set_meets_the_brief() -> None:
    items = load_datasets([GRADED])
    tags = [t for i in items for t in i.tags]
    assert len(items) >= 400
    assert len({i.question_id for i in items}) >= 80
    assert tags.count("injection") >= 30
    for kind in (
        "padding",
        "keyword_stuffing",
        "paraphrase",
        "transcribed",
        "off_topic",
        "empty",
        "non_native",
        "spoken",
    ):
        assert tags.count(kind) >= 10, kind
    splits: dict[str, set[str]] = {}
    for item in items:
        assert item.split in ("train", "dev", "test") and item.question and item.reference_answer
        splits.setdefault(str(item.question_id), set()).add(item.split)
    assert all(len(s) == 1 for s in splits.values()), "a question appears in two splits"


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "answer": "x", "human_score": 2, "question_id": "q"}\n'
        "{not json}\n"
        '{"id": "b", "answer": "x", "human_score": 9, "question_id": "q"}\n'
        '{"id": "c", "answer": "x", "human_score": 1}\n'
    )
    with pytest.raises(DatasetError) as error:
        load_jsonl(path)
    message = str(error.value)
    assert f"{path}:2: invalid JSON" in message
    assert f"{path}:3: human_score" in message
    assert f"{path}:4:" in message and "question_id" in message


def test_csv_loader_maps_columns_and_rescales(tmp_path: Path) -> None:
    path = tmp_path / "short_answers.csv"
    path.write_text(
        "q,ref,ans,grade\nWhat is a list?,A dynamic array.,An array that grows.,4\n"
        "What is a set?,A hash table of unique keys.,,0\n"
    )
    columns = CsvColumns(
        question="q", reference_answer="ref", answer="ans", score="grade", score_max=4
    )
    items = load_csv(path, columns)
    assert [i.human_score for i in items] == [5.0, 0.0] and items[1].answer == ""
    with pytest.raises(DatasetError, match="missing column"):
        load_csv(path, CsvColumns())


# -- runner, cache, reports, compare ---------------------------------------------------------------
@pytest.fixture(scope="module")
def small_items() -> list[EvalItem]:
    items = [i for i in load_datasets([GRADED]) if i.split == "dev"]
    return items[:24]


def test_runner_resumes_from_its_cache(
    small_items: list[EvalItem], corpus: Corpus, tmp_path: Path
) -> None:
    grader = OfflineGrader(REPO_DIR / "prompts")
    cache = EvalCache(tmp_path / "cache.sqlite3")
    first = run_eval(grader, small_items[:10], corpus, cache=cache)
    calls: list[str] = []
    original = grader.grade_sync

    def counting(item, answer):  # type: ignore[no-untyped-def]
        calls.append(answer)
        return original(item, answer)

    grader.grade_sync = counting  # type: ignore[method-assign]
    second = run_eval(grader, small_items, corpus, cache=cache)
    assert len(calls) == len(small_items) - 10  # the first ten came from the cache
    assert [p.predicted for p in second.predictions[:10]] == [
        p.predicted for p in first.predictions
    ]


def test_eval_command_writes_the_report_files(tmp_path: Path, small_items: list[EvalItem]) -> None:
    dataset = write_json_lines(
        tmp_path / "items.jsonl", [i.model_dump(exclude_none=True) for i in small_items]
    )
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--dataset",
            str(dataset),
            "--split",
            "all",
            "--out",
            str(out),
            "--quiet",
            "--no-cache",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "n",
        "pearson",
        "spearman",
        "qwk",
        "mae",
        "rmse",
        "within1",
        "injection_success_rate",
        "padding_inflation",
        "by_topic",
        "by_tag",
        "baseline",
        "intervals",
    ):
        assert key in metrics, key
    assert metrics["n"] == len(small_items)
    assert len(read_predictions(out / "predictions.jsonl")) == len(small_items)
    for plot in ("scatter.png", "confusion.png", "topics.png"):
        assert (out / plot).stat().st_size > 5_000
    report = (out / "report.md").read_text()
    assert "baseline (cosine)" in report and "Injection success rate" in report

    assert main(["eval", "compare", str(out), str(out)]) == 0


def test_a_lone_surrogate_does_not_sink_the_run(tmp_path: Path, corpus: Corpus) -> None:
    """A JSON "\\ud800" escape decodes to a code point no encoder takes, and bytes that are
    not UTF-8 cannot be decoded: both become U+FFFD, and every item is graded and cached."""
    question = {
        "question": "What does asyncio.Semaphore(10) do?",
        "reference_answer": "It lets at most ten tasks hold it at once; the rest wait.",
    }
    answers = ["At most ten tasks at once.", "At most ten \ud800 tasks.", "No idea."]
    lines = [
        json.dumps({"id": f"item-{n}", **question, "answer": a, "human_score": 3}).encode()
        for n, a in enumerate(answers)
    ]
    dataset = tmp_path / "items.jsonl"
    dataset.write_bytes(b"\n".join(lines).replace(b"No idea.", b"No \xff idea.") + b"\n")
    assert b"\\ud800" in dataset.read_bytes()
    items = load_jsonl(dataset)
    assert [i.answer for i in items[1:]] == ["At most ten \ufffd tasks.", "No \ufffd idea."]
    cache = EvalCache(tmp_path / "cache.sqlite3")
    result = run_eval(OfflineGrader(REPO_DIR / "prompts"), items, corpus, cache=cache)
    assert result.errors == []
    assert [p.item_id for p in result.predictions] == ["item-0", "item-1", "item-2"]


def test_compare_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    assert main(["eval", "compare", str(tmp_path), str(tmp_path)]) == 2


def test_robustness_metrics_use_the_relations() -> None:
    from app.evals.runner import Prediction

    def prediction(item_id: str, predicted: float, human: float, tags: list[str]) -> Prediction:
        return Prediction(
            item_id=item_id,
            question_id="q",
            topic="t",
            tags=tags,
            split="test",
            human_score=human,
            predicted=predicted,
            level=round(predicted),
            flags=[],
            misconceptions=0,
            grader="offline",
            model=None,
            prompt_version=None,
            fallback=False,
            latency_ms=1,
            prompt_tokens=None,
            completion_tokens=None,
            cost_usd=None,
        )

    predictions = [
        prediction("base", 3.0, 3.0, ["good"]),
        prediction("pad", 3.5, 3.0, ["padding", "padding_of:base"]),
        prediction("para", 2.0, 3.0, ["paraphrase", "paraphrase_of:base"]),
        prediction("inj1", 4.0, 1.0, ["injection"]),
        prediction("inj2", 1.2, 1.0, ["injection"]),
    ]
    metrics = compute_metrics(predictions, resamples=100)
    assert metrics["padding_inflation"] == pytest.approx(0.5)
    assert metrics["paraphrase_invariance"] == pytest.approx(1.0)
    assert metrics["injection_success_rate"] == pytest.approx(0.5)
    assert metrics["keyword_stuffing_gain"] is None


@pytest.mark.slow
def test_offline_grader_does_not_regress_on_the_test_split(corpus: Corpus) -> None:
    """The CI gate: the offline grader must stay at or above the committed baseline."""
    baseline = json.loads(BASELINE.read_text())
    items = [i for i in load_datasets([GRADED]) if i.split == "test"]
    result = run_eval(OfflineGrader(REPO_DIR / "prompts"), items, corpus)
    metrics = result.metrics
    tolerance = baseline["tolerance"]
    for key in ("spearman", "qwk", "within1", "pearson"):
        assert metrics[key] >= baseline["metrics"][key] - tolerance, (key, metrics[key])
    assert metrics["mae"] <= baseline["metrics"]["mae"] + tolerance
    assert metrics["injection_success_rate"] == 0.0
    assert metrics["padding_inflation"] < 0.25
    assert metrics["keyword_stuffing_gain"] < 0.25
    assert metrics["wrong_misconception_mean"] <= 1.5


@pytest.mark.slow
def test_simulated_interviews_pass_their_checks(settings) -> None:  # type: ignore[no-untyped-def]
    from app.evals.simulate import run_simulations

    result = run_simulations(
        settings.model_copy(update={"warm_vectors": False}), runs_per_persona=1, length=6
    )
    rates = result.pass_rates()
    assert {"no_repeats", "topic_spread", "report_gaps", "injection_no_gain"} <= set(rates)
    assert rates["no_repeats"]["all"] == 1.0
    assert rates["injection_no_gain"]["all"] == 1.0
    assert all(r["all"] >= 0.8 for r in rates.values()), result.summary()
