"""Labelled answers for grading evals: the JSONL format, a CSV importer, and item resolution.

Documented in ``evals/README.md``. Each item is self-contained (question and reference
answer inline), may name a corpus question (``question_id``) whose rubric then applies, or
carry its own rubric; otherwise a rubric is derived from the reference answer.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.corpus.items import InterviewItem, derive_rubric, item_from_question
from app.corpus.models import Corpus, Rubric
from app.embeddings import content_hash
from app.errors import InterviewerError
from app.text import valid_unicode

Split = Literal["train", "dev", "test"]

# Tags that tie a derived answer to the answer it was derived from: "<relation>:<item id>".
PAIR_RELATIONS = ("paraphrase_of", "padding_of", "stuffing_of", "transcript_of")


class DatasetError(InterviewerError):
    """A dataset file could not be read; the message lists ``file:line: problem`` entries."""

    exit_code = 2  # the dataset named on the command line is wrong


class EvalItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    question: str | None = None
    reference_answer: str | None = None
    question_id: str | None = None
    rubric: Rubric | None = None
    answer: str
    human_score: float = Field(ge=0, le=5)
    human_scores: list[float] | None = None  # individual ratings when several graders labelled
    criterion_scores: dict[str, float] | None = None
    rationale: str | None = None
    tags: list[str] = []
    split: Split | None = None

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        return _valid_strings(data)

    @model_validator(mode="after")
    def _has_question(self) -> Self:
        if self.question_id is None and not (self.question and self.reference_answer):
            raise ValueError(
                "an item needs `question_id`, or both `question` and `reference_answer`"
            )
        if self.human_scores and any(not 0 <= s <= 5 for s in self.human_scores):
            raise ValueError("human_scores must be between 0 and 5")
        return self

    def relation(self, name: str) -> str | None:
        """The item id in a ``name:<id>`` tag, e.g. ``relation('padding_of')``."""
        prefix = f"{name}:"
        for tag in self.tags:
            if tag.startswith(prefix):
                return tag[len(prefix) :]
        return None

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    @property
    def cache_key(self) -> str:
        """Changes when anything that affects grading changes."""
        rubric = self.rubric.model_dump_json() if self.rubric else ""
        return content_hash(
            self.id,
            self.question or "",
            self.reference_answer or "",
            self.question_id or "",
            rubric,
            self.answer,
        )


def _valid_strings(value: Any) -> Any:
    """Every string in a parsed item, with code points no encoder takes replaced."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {_valid_strings(k): _valid_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_strings(v) for v in value]
    return value


def load_jsonl(path: Path) -> list[EvalItem]:
    """Items, one JSON object a line; bytes that are not UTF-8 become U+FFFD."""
    items: list[EvalItem] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}:1: cannot read: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(EvalItem.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON: {exc.msg}")
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()
            )
            problems.append(f"{path}:{number}: {detail}")
    if problems:
        raise DatasetError("\n".join(problems))
    return items


class CsvColumns(BaseModel):
    """Which CSV columns hold what (public short-answer sets use many different names)."""

    question: str = "question"
    reference_answer: str = "desired_answer"
    answer: str = "student_answer"
    score: str = "score"
    id: str | None = None
    score_max: float = Field(default=5.0, gt=0)  # rescaled to 0-5
    split: str | None = None


def load_csv(path: Path, columns: CsvColumns) -> list[EvalItem]:
    items: list[EvalItem] = []
    problems: list[str] = []
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        needed = [columns.question, columns.reference_answer, columns.answer, columns.score]
        missing = [c for c in needed if c not in header]
        if missing:
            raise DatasetError(
                f"{path}:1: missing column(s) {missing}; the file has {header}. "
                "Map them with --csv-question/--csv-reference/--csv-answer/--csv-score."
            )
        for number, row in enumerate(reader, start=2):
            try:
                raw_score = float(row[columns.score])
                split = row.get(columns.split) if columns.split else None
                items.append(
                    EvalItem(
                        id=(row.get(columns.id) if columns.id else None) or f"{path.stem}-{number}",
                        question=row[columns.question],
                        reference_answer=row[columns.reference_answer],
                        answer=row[columns.answer] or "",
                        human_score=round(5.0 * raw_score / columns.score_max, 3),
                        split=split if split in ("train", "dev", "test") else None,
                    )
                )
            except (ValueError, ValidationError) as exc:
                problems.append(f"{path}:{number}: {exc}")
    if problems:
        raise DatasetError("\n".join(problems[:50]))
    return items


def load_datasets(paths: Sequence[Path], csv_columns: CsvColumns | None = None) -> list[EvalItem]:
    """Items from JSONL or CSV files (folders are read for *.jsonl); ids must be unique."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    items: list[EvalItem] = []
    for file in files:
        if file.suffix.lower() == ".csv":
            items.extend(load_csv(file, csv_columns or CsvColumns()))
        else:
            items.extend(load_jsonl(file))
    seen: set[str] = set()
    duplicates = sorted({i.id for i in items if i.id in seen or seen.add(i.id)})  # type: ignore[func-returns-value]
    if duplicates:
        raise DatasetError(f"duplicate item ids: {', '.join(duplicates[:20])}")
    return items


def resolve(item: EvalItem, corpus: Corpus | None) -> InterviewItem:
    """The gradable item: the corpus question's rubric, the item's own, or a derived one."""
    if item.question_id and corpus is not None and item.question_id in corpus.questions:
        return item_from_question(corpus.questions[item.question_id])
    if item.question_id and not (item.question and item.reference_answer):
        raise DatasetError(
            f"item {item.id}: question {item.question_id!r} is not in the corpus and the item "
            "has no inline question and reference answer"
        )
    assert item.question is not None
    assert item.reference_answer is not None
    rubric = item.rubric or derive_rubric(item.reference_answer)
    return InterviewItem(
        id=item.question_id or f"eval:{item.id}",
        question=item.question,
        reference_answer=item.reference_answer,
        rubric=rubric,
    )


def select(
    items: Iterable[EvalItem], split: str | None = None, limit: int | None = None
) -> list[EvalItem]:
    chosen = [i for i in items if split in (None, "all") or i.split == split]
    return chosen[:limit] if limit else chosen
