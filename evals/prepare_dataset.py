"""Make the labelled files self-contained and assign the fixed train/dev/test split.

    python evals/prepare_dataset.py            # rewrites evals/datasets/graded/*.jsonl in place

Idempotent. For every item it fills `question` and `reference_answer` from the corpus
question named by `question_id`, and sets `split` by question, so no question is in two
splits. A question keeps the split recorded for it in ``datasets/splits.json`` forever (a
graded set whose splits moved would leak test questions into fitting). Questions labelled for
the first time are dealt out per topic: ordered by a hash of their id, the first goes to test,
the second to dev, the rest to train, and the file records them. Items labelled a second time,
blind, by another annotator (``datasets/second_annotation/*.jsonl``) get ``human_scores``
[first, second], and ``human_score`` becomes their mean. Run it after adding labels or editing
a labelled question's model answer.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

from app.config import get_settings
from app.corpus import load_corpus

GRADED = Path(__file__).resolve().parent / "datasets" / "graded"
SECOND = Path(__file__).resolve().parent / "datasets" / "second_annotation"
SPLITS = Path(__file__).resolve().parent / "datasets" / "splits.json"
FIELD_ORDER = [
    "id",
    "question_id",
    "question",
    "reference_answer",
    "answer",
    "human_score",
    "human_scores",
    "criterion_scores",
    "rationale",
    "tags",
    "split",
]


def split_for_questions(
    question_ids_by_topic: dict[str, list[str]], recorded: dict[str, str]
) -> dict[str, str]:
    """Recorded splits stay; each topic's new questions are dealt test, dev, train, train..."""
    splits: dict[str, str] = {}
    for _topic, question_ids in sorted(question_ids_by_topic.items()):
        new = [q for q in set(question_ids) if q not in recorded]
        splits.update({q: recorded[q] for q in set(question_ids) if q in recorded})
        ordered = sorted(new, key=lambda q: hashlib.sha256(q.encode()).hexdigest())
        for position, question_id in enumerate(ordered):
            splits[question_id] = "test" if position == 0 else "dev" if position == 1 else "train"
    return splits


def main() -> int:
    corpus = load_corpus(get_settings().corpus_dir)
    files = sorted(GRADED.glob("*.jsonl"))
    rows_by_file: dict[Path, list[dict[str, object]]] = {}
    by_topic: dict[str, list[str]] = defaultdict(list)
    for path in files:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows_by_file[path] = rows
        for row in rows:
            question = corpus.questions.get(str(row["question_id"]))
            if question is None:
                print(
                    f"{path}: {row['id']}: unknown question {row['question_id']}", file=sys.stderr
                )
                return 1
            by_topic[question.topic].append(question.id)
    recorded = json.loads(SPLITS.read_text()) if SPLITS.is_file() else {}
    splits = split_for_questions(by_topic, recorded)
    SPLITS.write_text(json.dumps(dict(sorted(splits.items())), indent=1) + "\n")
    second = {
        row["id"]: row
        for path in sorted(SECOND.glob("*.jsonl"))
        for row in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    }
    counts: dict[str, int] = defaultdict(int)
    for path, rows in rows_by_file.items():
        lines = []
        for row in rows:
            question = corpus.questions[str(row["question_id"])]
            row["question"] = question.question
            row["reference_answer"] = question.model_answer
            row["split"] = splits[question.id]
            other = second.get(str(row["id"]))
            if other is not None:
                first = row.get("human_scores", [row["human_score"]])[0]  # type: ignore[index]
                row["human_scores"] = [first, other["human_score"]]
                row["human_score"] = round((float(first) + float(other["human_score"])) / 2, 2)
            counts[str(row["split"])] += 1
            ordered = {key: row[key] for key in FIELD_ORDER if key in row}
            ordered.update({k: v for k, v in row.items() if k not in ordered})
            lines.append(json.dumps(ordered, ensure_ascii=False))
        path.write_text("\n".join(lines) + "\n")
    questions = {s: sum(1 for v in splits.values() if v == s) for s in ("train", "dev", "test")}
    print(
        f"{sum(len(r) for r in rows_by_file.values())} items in {len(files)} files; "
        + ", ".join(f"{s}: {counts[s]} items / {questions[s]} questions" for s in questions)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
