"""Record an offline-grader test-split run as the regression baseline CI checks against.

    interviewer eval --grader offline --split test --out evals/runs/offline-test
    python evals/write_baseline.py evals/runs/offline-test

tests/test_evals.py fails when a later run falls more than `tolerance` below these numbers.
Raise the baseline deliberately, with the run that justifies it in the commit message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASELINE = Path(__file__).resolve().parent / "baselines" / "offline-test.json"
KEYS = (
    "n",
    "pearson",
    "spearman",
    "qwk",
    "mae",
    "rmse",
    "within1",
    "exact",
    "injection_success_rate",
    "padding_inflation",
    "keyword_stuffing_gain",
    "paraphrase_invariance",
    "transcription_invariance",
    "wrong_misconception_mean",
)


def main(run: str) -> int:
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    if metrics["grader"]["name"] != "offline":
        raise SystemExit("the baseline is for the offline grader")
    baseline = {
        "grader": metrics["grader"],
        "split": "test",
        "tolerance": 0.02,
        "metrics": {key: metrics[key] for key in KEYS},
        "baseline_cosine": {key: metrics["baseline"].get(key) for key in KEYS if key != "n"},
    }
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
    print(f"wrote {BASELINE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
