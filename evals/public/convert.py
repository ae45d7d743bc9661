"""Convert public, human-graded short-answer datasets to the eval JSONL format (``EvalItem``).

    PYTHONPATH=. python evals/public/convert.py scientsbank SRC_DIR OUT.jsonl
    PYTHONPATH=. python evals/public/convert.py beetle SRC_DIR OUT.jsonl
    PYTHONPATH=. python evals/public/convert.py dtgrade SRC_DIR OUT.jsonl
    PYTHONPATH=. python evals/public/convert.py powergrading SRC_DIR OUT.jsonl
    PYTHONPATH=. python evals/public/convert.py asap SRC_DIR OUT.jsonl --prompts PROMPTS_DIR

SRC_DIR is a checkout of the dataset's repository or an extraction of it
(``git --git-dir=<mirror> archive HEAD | tar -x -C SRC_DIR``). Zip archives found in SRC_DIR
(e.g. ``semeval-3way.zip``) are read in place; they need not be unpacked. Sources, licences,
score mappings and caveats: ``evals/public/README.md``.

Every output line is validated with ``app.evals.dataset.EvalItem``. Rows that cannot be
converted are dropped and counted by reason on stderr. Output is sorted by id and ids are
derived from the source's own ids, so a re-run gives byte-identical files. ``split`` is left
empty (splits are assigned downstream); the source's split is kept as ``orig_split:<name>``,
the question as ``qid:<id>`` (for leave-questions-out) and the dataset as ``dataset:<name>``.
Only the standard library and pydantic are used.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.evals.dataset import EvalItem

# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def clean(text: str | None) -> str:
    """Whitespace collapsed and stripped; ``None`` becomes ``""``."""
    return re.sub(r"\s+", " ", text or "").strip()


def slug(text: str) -> str:
    """A tag-safe form of an id: no whitespace, no colons."""
    return re.sub(r"[\s:]+", "_", text.strip())


@dataclass
class Report:
    """What a conversion kept and dropped."""

    dataset: str
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def summary(self) -> str:
        parts = [f"{self.dataset}: kept {self.kept}"]
        if self.dropped:
            parts.append(
                "dropped " + ", ".join(f"{n} {r}" for r, n in sorted(self.dropped.items()))
            )
        else:
            parts.append("dropped 0")
        return "; ".join(parts)


def source_files(src: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, content) for every file under ``src``, and for every member of every
    zip archive under it (as ``<zip path>!/<member>``), in sorted order."""
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if "/.git/" in f"/{rel}":
            continue
        if path.suffix.lower() == ".zip":
            try:
                archive = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                print(f"skipping {rel}: not a readable zip archive", file=sys.stderr)
                continue
            with archive:
                for name in sorted(archive.namelist()):
                    if not name.endswith("/"):
                        yield f"{rel}!/{name}", archive.read(name)
        else:
            yield rel, path.read_bytes()


def write_items(
    rows: Iterable[dict[str, Any]], out: Path, report: Report, seen_ids: set[str] | None = None
) -> None:
    """Validate, de-duplicate, sort by id and write one JSON object a line."""
    items: dict[str, EvalItem] = {}
    seen = seen_ids if seen_ids is not None else set()
    for row in rows:
        try:
            item = EvalItem.model_validate(row)
        except ValidationError as exc:
            report.drop("invalid (" + exc.errors()[0]["msg"] + ")")
            continue
        if item.id in items or item.id in seen:
            report.drop("duplicate id")
            continue
        items[item.id] = item
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        for item_id in sorted(items):
            data = items[item_id].model_dump(exclude_none=True, exclude_defaults=False)
            data.pop("split", None)
            handle.write(json.dumps(data, ensure_ascii=False, sort_keys=False) + "\n")
    report.kept = len(items)


# --------------------------------------------------------------------------------------
# SemEval-2013 Task 7: SciEntsBank and Beetle (Student Response Analysis)
# --------------------------------------------------------------------------------------

# 5-way labels (the original annotation) -> 0-5.
SEMEVAL_5WAY = {
    "correct": 5.0,
    "partially_correct_incomplete": 2.5,
    "contradictory": 0.0,
    "irrelevant": 0.0,
    "non_domain": 0.0,
}
# 3-way labels: "incorrect" merges partially_correct_incomplete, irrelevant and non_domain,
# so it gets a coarse value between a partial answer (2.5) and a wrong one (0).
SEMEVAL_3WAY = {"correct": 5.0, "contradictory": 0.0, "incorrect": 1.5}
SEMEVAL_2WAY = {"correct": 5.0, "incorrect": 0.0}
SEMEVAL_SPLITS = {
    "train": "train",
    "training": "train",
    "test-unseen-answers": "test_ua",
    "test-unseen-questions": "test_uq",
    "test-unseen-domains": "test_ud",
}
_CORPUS_DIR = {"scientsbank": "sciEntsBank", "beetle": "beetle"}


@dataclass(frozen=True)
class SemevalFile:
    path: str
    scheme: str  # "5way", "3way" or "2way"
    split: str  # train / test_ua / test_uq / test_ud


def classify_semeval_path(path: str, corpus_dir: str) -> SemevalFile | None:
    """Which scheme and split a question file belongs to, from the official layouts:

    5-way: ``<corpus>/<split>/Core/<q>.xml`` (``semeval-5way.zip``; ``semeval2013-Task7-5way/``)
    2/3-way: ``training/<n>way/<corpus>/<q>.xml`` and ``test/<n>way/<corpus>/<split>/<q>.xml``
    """
    if not path.lower().endswith(".xml"):
        return None
    parts = re.split(r"[/!]+", path)
    try:
        at = parts.index(corpus_dir)
    except ValueError:
        return None
    before, after = parts[:at], parts[at + 1 :]
    way = next((p for p in reversed(before) if re.fullmatch(r"[235]way", p)), None)
    if len(after) == 3 and after[1] == "Core" and after[0] in SEMEVAL_SPLITS:
        # the 5-way layout; a 5way folder name, when present, must agree
        if way not in (None, "5way") or any("3way" in p for p in before):
            return None
        return SemevalFile(path, "5way", SEMEVAL_SPLITS[after[0]])
    if way in ("2way", "3way"):
        if len(after) == 1 and "training" in before:
            return SemevalFile(path, way, "train")
        if len(after) == 2 and "test" in before and after[0] in SEMEVAL_SPLITS:
            return SemevalFile(path, way, SEMEVAL_SPLITS[after[0]])
    return None


def pick_reference(refs: list[tuple[str, str]], mode: str) -> str:
    """One reference text from ``[(category, text)]``.

    ``first``: the first BEST reference (else the first one); ``best``: every BEST reference,
    one a line; ``all``: every reference, one a line.
    """
    texts = [(cat.upper(), text) for cat, text in refs if text]
    if not texts:
        return ""
    best = [t for cat, t in texts if cat == "BEST"]
    if mode == "first":
        return best[0] if best else texts[0][1]
    chosen = (best or [texts[0][1]]) if mode == "best" else [t for _, t in texts]
    if len(chosen) == 1:
        return chosen[0]
    return "Any of these answers is correct:\n" + "\n".join(f"- {t}" for t in chosen)


def semeval_rows(src: Path, dataset: str, refs_mode: str, report: Report) -> list[dict[str, Any]]:
    corpus_dir = _CORPUS_DIR[dataset]
    files: dict[str, list[tuple[SemevalFile, bytes]]] = {"5way": [], "3way": [], "2way": []}
    for path, data in source_files(src):
        info = classify_semeval_path(path, corpus_dir)
        if info is not None:
            files[info.scheme].append((info, data))
    scheme = next((s for s in ("5way", "3way", "2way") if files[s]), None)
    if scheme is None:
        raise SystemExit(
            f"no {corpus_dir} XML found under {src} (expected semeval-5way.zip, "
            "semeval-3way.zip or their unpacked folders)"
        )
    if scheme != "5way":
        print(
            f"{dataset}: no 5-way files found; using the {scheme} labels (coarser scores)",
            file=sys.stderr,
        )
    mapping = {"5way": SEMEVAL_5WAY, "3way": SEMEVAL_3WAY, "2way": SEMEVAL_2WAY}[scheme]
    rows: list[dict[str, Any]] = []
    for info, data in sorted(files[scheme], key=lambda f: f[0].path):
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            report.drop("unparsable XML file")
            continue
        qid = root.get("id") or Path(info.path).stem
        module = root.get("module") or ""
        question = clean(root.findtext("questionText"))
        ref_pairs = [(r.get("category") or "", clean(r.text)) for r in root.iter("referenceAnswer")]
        reference = pick_reference(ref_pairs, refs_mode)
        for answer in root.iter("studentAnswer"):
            label = (answer.get("accuracy") or "").strip().lower().replace("-", "_")
            text = clean(answer.text)
            answer_id = answer.get("id") or ""
            if not answer_id:
                report.drop("no answer id")
                continue
            if not text:
                report.drop("empty answer")
                continue
            if label not in mapping:
                report.drop(f"unknown label {label or '(none)'}")
                continue
            tags = [
                f"dataset:{dataset}",
                f"label:{label}" if scheme == "5way" else f"label{scheme[0]}:{label}",
                f"label_scheme:{scheme}",
                f"orig_split:{info.split}",
                f"qid:{slug(qid)}",
                f"n_refs:{len(ref_pairs)}",
            ]
            if module:
                tags.append(f"module:{slug(module)}")
            if answer.get("count"):
                tags.append(f"count:{answer.get('count')}")
            rows.append(
                {
                    "id": f"{dataset}:{answer_id}",
                    "question": question,
                    "reference_answer": reference,
                    "answer": text,
                    "human_score": mapping[label],
                    "tags": tags,
                }
            )
    return rows


# --------------------------------------------------------------------------------------
# DT-Grade v1.0 (Banjade et al. 2016): DeepTutor physics dialogue answers
# --------------------------------------------------------------------------------------

DTGRADE_LABELS = {
    "correct": 5.0,
    "correct_but_incomplete": 2.5,
    "contradictory": 0.0,
    "incorrect": 0.0,
}


def dtgrade_rows(src: Path, refs_mode: str, report: Report) -> list[dict[str, Any]]:
    data = next((d for n, d in source_files(src) if n.endswith("grade_data.xml")), None)
    if data is None:
        raise SystemExit(f"grade_data.xml not found under {src}")
    root = ET.fromstring(data)
    rows: list[dict[str, Any]] = []
    for inst in root.iter("Instance"):
        meta = inst.find("MetaInfo")
        annotation = inst.find("Annotation")
        if meta is None or annotation is None:
            report.drop("instance without MetaInfo or Annotation")
            continue
        chosen = [
            part.split("(")[0]
            for part in (annotation.get("Label") or "").split("|")
            if part.strip().endswith("(1)")
        ]
        if len(chosen) != 1 or chosen[0] not in DTGRADE_LABELS:
            report.drop("not exactly one label")
            continue
        label = chosen[0]
        problem = clean(inst.findtext("ProblemDescription"))
        question_text = clean(inst.findtext("Question"))
        question = f"{problem}\n\n{question_text}" if problem else question_text
        refs = [
            clean(re.sub(r"^\s*\d+\s*:\s*", "", line))
            for line in (inst.findtext("ReferenceAnswers") or "").splitlines()
            if line.strip()
        ]
        refs = [r for r in refs if r]
        mode = "first" if refs_mode == "first" else "all"
        reference = pick_reference([("BEST", r) for r in refs], mode)
        answer = clean(inst.findtext("Answer"))
        if not answer:
            report.drop("empty answer")
            continue
        task = meta.get("TaskID") or ""
        qhash = hashlib.sha1(question.encode("utf-8")).hexdigest()[:8]
        extra = annotation.find("AdditionalAnnotation")
        context = (extra.get("ContextRequired") if extra is not None else None) or "?"
        rows.append(
            {
                "id": f"dtgrade:{int(inst.get('ID') or 0):04d}",
                "question": question,
                "reference_answer": reference,
                "answer": answer,
                "human_score": DTGRADE_LABELS[label],
                "tags": [
                    "dataset:dtgrade",
                    f"label:{label}",
                    "orig_split:all",
                    f"qid:dt-{slug(task)}-{qhash}",
                    f"task:{slug(task)}",
                    f"context_required:{slug(context)}",
                    f"n_refs:{len(refs)}",
                    f"student:{slug(meta.get('StudentID') or '?')}",
                ],
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# Powergrading-1.0 (Basu, Jacobs & Vanderwende 2013): US citizenship test answers
# --------------------------------------------------------------------------------------

_XLSX_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def xlsx_rows(data: bytes) -> list[list[str]]:
    """The first sheet of an .xlsx file as rows of strings (standard library only)."""
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in book.namelist():
            for item in ET.fromstring(book.read("xl/sharedStrings.xml")).iter(f"{_XLSX_NS}si"):
                shared.append("".join(t.text or "" for t in item.iter(f"{_XLSX_NS}t")))
        sheet = ET.fromstring(book.read("xl/worksheets/sheet1.xml"))
    rows: list[list[str]] = []
    for row in sheet.iter(f"{_XLSX_NS}row"):
        cells: dict[int, str] = {}
        for cell in row.iter(f"{_XLSX_NS}c"):
            letters = re.match(r"[A-Z]+", cell.get("r") or "A")
            column = 0
            for ch in letters.group(0) if letters else "A":
                column = column * 26 + ord(ch) - 64
            value = cell.find(f"{_XLSX_NS}v")
            kind = cell.get("t")
            if kind == "s" and value is not None and value.text is not None:
                text = shared[int(value.text)]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{_XLSX_NS}t"))
            else:
                text = value.text if value is not None and value.text is not None else ""
            cells[column - 1] = text
        if cells:
            rows.append([cells.get(i, "") for i in range(max(cells) + 1)])
    return rows


def table_rows(files: dict[str, bytes], stem: str) -> list[list[str]] | None:
    """Rows of ``<stem>.tsv`` (the original corpus) or ``<stem>.xlsx`` (a converted copy)."""
    for name, data in sorted(files.items()):
        base = name.rsplit("/", 1)[-1].lower()
        if base == f"{stem}.tsv":
            text = data.decode("utf-8-sig", errors="replace")
            return [row for row in csv.reader(io.StringIO(text), delimiter="\t")]
    for name, data in sorted(files.items()):
        if name.rsplit("/", 1)[-1].lower() == f"{stem}.xlsx":
            return xlsx_rows(data)
    return None


def _grade(value: str) -> float | None:
    value = value.strip()
    if value == "":
        return None
    try:
        grade = float(value)
    except ValueError:
        return None
    return grade if grade in (0.0, 1.0) else None


def powergrading_rows(src: Path, report: Report) -> list[dict[str, Any]]:
    files = dict(source_files(src))
    key = table_rows(files, "questions_answer_key")
    answers = table_rows(files, "studentanswers_grades_698")
    if key is None or answers is None:
        raise SystemExit(
            "questions_answer_key and studentanswers_grades_698 (.tsv or .xlsx) "
            f"not found under {src}"
        )
    questions: dict[str, tuple[str, list[str]]] = {}
    for row in key[1:]:
        if len(row) >= 3 and row[0].strip():
            alternatives = [clean(a) for a in row[2:] if clean(a)]
            questions[row[0].strip()] = (clean(row[1]), alternatives)
    header = [h.strip().lower() for h in answers[0]]
    try:
        col_student, col_q = header.index("student"), header.index("q#")
        col_answer = header.index("answer")
    except ValueError as exc:
        raise SystemExit(f"unexpected columns in studentanswers_grades_698: {answers[0]}") from exc
    grade_cols = [i for i, h in enumerate(header) if re.fullmatch(r"g\d+", h)]
    rows: list[dict[str, Any]] = []
    for row in answers[1:]:
        row = row + [""] * (len(header) - len(row))
        qnum = row[col_q].strip()
        if qnum not in questions:
            report.drop("unknown question")
            continue
        grades = [_grade(row[i]) for i in grade_cols]
        if all(g is None for g in grades):
            report.drop("ungraded question (the corpus grades 10 of its 20)")
            continue
        if any(g is None for g in grades):
            report.drop("missing or unparsable grade")
            continue
        text = clean(row[col_answer])
        if not text:
            report.drop("empty answer")
            continue
        question, alternatives = questions[qnum]
        if len(alternatives) == 1:
            reference = alternatives[0]
        else:
            reference = "Any of these answers is correct: " + "; ".join(alternatives) + "."
        scores = [5.0 * g for g in grades if g is not None]
        rows.append(
            {
                "id": f"powergrading:{row[col_student].strip()}:{qnum}",
                "question": question,
                "reference_answer": reference,
                "answer": text,
                "human_score": round(sum(scores) / len(scores), 4),
                "human_scores": scores,
                "tags": [
                    "dataset:powergrading",
                    "label:" + "".join(str(int(g or 0)) for g in grades),
                    "orig_split:all",
                    f"qid:pg-{qnum}",
                ],
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# ASAP-SAS (Hewlett Foundation short answer scoring, Kaggle 2012)
# --------------------------------------------------------------------------------------

# Score range of each of the ten prompts (sets 1, 2, 5, 6: 0-3; the others 0-2).
ASAP_MAX = {1: 3, 2: 3, 3: 2, 4: 2, 5: 3, 6: 3, 7: 2, 8: 2, 9: 2, 10: 2}


def asap_prompts(directory: Path | None) -> dict[int, tuple[str, str]]:
    """Prompt text and reference (key elements, or a rubric) per set, from files named
    ``essay_<n>_description.txt`` (prompt) and ``essay_<n>_key.txt`` or
    ``essay_<n>_rubric.txt`` (reference)."""
    prompts: dict[int, tuple[str, str]] = {}
    if directory is None:
        return prompts
    for n in ASAP_MAX:
        prompt_file = directory / f"essay_{n}_description.txt"
        ref_file = next(
            (
                directory / name
                for name in (f"essay_{n}_key.txt", f"essay_{n}_rubric.txt")
                if (directory / name).is_file()
            ),
            None,
        )
        if prompt_file.is_file() and ref_file is not None:
            reference = "\n".join(
                line.strip() for line in ref_file.read_text("utf-8").splitlines() if line.strip()
            )
            prompts[n] = (clean(prompt_file.read_text("utf-8")), reference)
    return prompts


def asap_rows(
    src: Path, prompts_dir: Path | None, gold: str, report: Report
) -> list[dict[str, Any]]:
    files = dict(source_files(src))
    prompts = asap_prompts(prompts_dir)
    name = next(
        (n for n in sorted(files) if n.rsplit("/", 1)[-1] in ("train_rel_2.tsv", "train.tsv")),
        None,
    )
    if name is None:
        raise SystemExit(f"train_rel_2.tsv or train.tsv not found under {src}")
    text = files[name].decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    rows: list[dict[str, Any]] = []
    for record in reader:
        try:
            essay_set = int(record["EssaySet"])
            raw = [int(record["Score1"]), int(record["Score2"])]
        except (KeyError, TypeError, ValueError):
            report.drop("unparsable row")
            continue
        top = ASAP_MAX.get(essay_set)
        if top is None or any(not 0 <= s <= top for s in raw):
            report.drop("score out of range")
            continue
        if essay_set not in prompts:
            report.drop("no prompt/reference for its set")
            continue
        answer = clean(record.get("EssayText"))
        if not answer:
            report.drop("empty answer")
            continue
        scores = [round(5.0 * s / top, 4) for s in raw]
        human = scores[0] if gold == "score1" else round(sum(scores) / 2, 4)
        question, reference = prompts[essay_set]
        rows.append(
            {
                "id": f"asap:{record['Id'].strip()}",
                "question": question,
                "reference_answer": reference,
                "answer": answer,
                "human_score": human,
                "human_scores": scores,
                "tags": [
                    "dataset:asap",
                    f"label:{raw[0]}/{raw[1]}",
                    f"score_max:{top}",
                    "orig_split:train",
                    f"qid:asap-{essay_set}",
                ],
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    commands: dict[str, Callable[[argparse.Namespace, Report], list[dict[str, Any]]]] = {}

    for name in ("scientsbank", "beetle"):
        p = sub.add_parser(name, help=f"SemEval-2013 Task 7 {name} (XML, 5-way or 3-way)")
        p.add_argument(
            "--refs",
            choices=("first", "best", "all"),
            default="first",
            help="which reference answer(s) to use (default: the first BEST one)",
        )
        commands[name] = lambda a, r, n=name: semeval_rows(a.src, n, a.refs, r)  # type: ignore[misc]
    p = sub.add_parser("dtgrade", help="DT-Grade v1.0 (grade_data.xml)")
    p.add_argument(
        "--refs",
        choices=("first", "all"),
        default="first",
        help="which reference answer(s) to use (default: the first one)",
    )
    commands["dtgrade"] = lambda a, r: dtgrade_rows(a.src, a.refs, r)
    sub.add_parser("powergrading", help="Powergrading-1.0 corpus (TSV, or an .xlsx copy)")
    commands["powergrading"] = lambda a, r: powergrading_rows(a.src, r)
    p = sub.add_parser("asap", help="ASAP-SAS (Kaggle train_rel_2.tsv)")
    p.add_argument("--prompts", type=Path, help="folder of essay_<n>_description/_key.txt")
    p.add_argument(
        "--gold",
        choices=("mean", "score1"),
        default="mean",
        help="human_score: mean of both raters (default) or rater 1 (Kaggle's gold)",
    )
    commands["asap"] = lambda a, r: asap_rows(a.src, a.prompts, a.gold, r)

    for p in sub.choices.values():
        p.add_argument("src", type=Path, help="the dataset's folder")
        p.add_argument("out", type=Path, help="the JSONL file to write")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        parser.error(f"{args.src} is not a folder")
    report = Report(args.dataset)
    rows = commands[args.dataset](args, report)
    write_items(rows, args.out, report)
    print(report.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
