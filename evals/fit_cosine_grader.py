"""Fit the cosine baseline grader's two constants on the TRAIN split and save them.

    python evals/fit_cosine_grader.py            # writes app/grading/cosine_params.json

The cosine grader (:mod:`app.grading.cosine`) scores an answer as
``clamp(slope * cosine(answer, reference) + intercept, 0, 5)``. The slope and intercept are
the least-squares line of the human scores on the cosines, over the train split only; the
dev and test splits are never read here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import app  # noqa: F401  (the offline environment first)
from app.config import get_settings
from app.corpus import load_corpus
from app.embeddings import get_encoder
from app.evals.dataset import load_datasets, resolve
from app.grading.cosine import PARAMS_FILE, CosineParams, similarity

DATASET = Path(__file__).resolve().parent / "datasets" / "graded"


def main() -> int:
    corpus = load_corpus(get_settings().corpus_dir)
    train = [i for i in load_datasets([DATASET]) if i.split == "train"]
    encoder = get_encoder()
    cosines = np.asarray(
        [similarity(encoder, i.answer, resolve(i, corpus).reference_answer) for i in train]
    )
    human = np.asarray([i.human_score for i in train])
    slope, intercept = (float(v) for v in np.polyfit(cosines, human, 1))
    params = CosineParams(
        version=f"{time.strftime('%Y%m%d')}-train{len(train)}",
        slope=slope,
        intercept=intercept,
        fit={
            "script": "evals/fit_cosine_grader.py",
            "split": "train",
            "n": len(train),
            "dataset": "evals/datasets/graded",
            "objective": "least squares: human score = slope * cosine + intercept",
            "corpus_version": corpus.version,
        },
    )
    PARAMS_FILE.write_text(json.dumps(params.model_dump(), indent=2) + "\n", encoding="utf-8")
    print(f"slope {slope:.4f}, intercept {intercept:.4f} on {len(train)} train items")
    print(f"wrote {PARAMS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
