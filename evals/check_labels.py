"""Check labelled answer files against the corpus and the labelling guide.

    python evals/check_labels.py evals/datasets/graded/*.jsonl

Errors (exit 1): bad JSON or schema, unknown question or criterion ids, duplicate ids, broken
relation tags, scores that contradict the guide. Warnings: a human score far from the rubric
mapping of its own criterion scores (allowed, but the rationale should say why).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from app.config import get_settings
from app.corpus.loader import check_corpus
from app.corpus.models import Question
from app.evals.dataset import PAIR_RELATIONS, DatasetError, EvalItem, load_jsonl
from app.grading.models import CriterionScore
from app.grading.scoring import overall_score

QUALITY = ("excellent", "good", "partial", "wrong_misconception", "off_topic", "empty")
ADVERSARIAL = ("injection", "padding", "keyword_stuffing", "paraphrase", "transcribed")
VOICES = ("terse", "rambling", "non_native", "spoken")
KNOWN = set(QUALITY) | set(ADVERSARIAL) | set(VOICES)


def _questions() -> dict[str, Question]:
    corpus, issues = check_corpus(get_settings().corpus_dir)
    if corpus is None:
        print(
            "warning: the corpus does not fully validate; checking against what loads",
            file=sys.stderr,
        )
        for issue in issues[:5]:
            print(f"  {issue}", file=sys.stderr)
        from app.corpus.loader import _load_topic_file, _load_topics

        topics, _ = _load_topics(get_settings().corpus_dir)
        known = {t.id: t for t in topics.topics} if topics else {}
        questions: dict[str, Question] = {}
        for path in sorted(get_settings().corpus_dir.glob("*.yaml")):
            if path.name != "topics.yaml":
                for question, _node in _load_topic_file(path, known)[0]:
                    questions[question.id] = question
        return questions
    return dict(corpus.questions)


def _first(item: EvalItem) -> float:
    """The first annotator's score (``human_score`` is the mean when there are two)."""
    return item.human_scores[0] if item.human_scores else item.human_score


def check_file(
    path: Path, questions: dict[str, Question]
) -> tuple[list[str], list[str], list[EvalItem]]:
    errors: list[str] = []
    warnings: list[str] = []
    try:
        items = load_jsonl(path)
    except DatasetError as exc:
        return str(exc).splitlines(), [], []
    by_id: dict[str, EvalItem] = {}
    for item in items:
        where = f"{path}: {item.id}"
        if item.id in by_id:
            errors.append(f"{where}: duplicate id")
        by_id[item.id] = item
        question = questions.get(item.question_id or "")
        if question is None:
            errors.append(f"{where}: unknown question_id {item.question_id!r}")
            continue
        if not item.id.startswith(f"{question.id}--"):
            errors.append(f"{where}: id must be '<question_id>--<nn>'")
        if (item.question and item.question != question.question) or (
            item.reference_answer and item.reference_answer != question.model_answer
        ):
            errors.append(f"{where}: question or reference answer is stale; run prepare_dataset.py")
        ratings = item.human_scores or [item.human_score]
        if any(abs(r * 2 - round(r * 2)) > 1e-9 for r in ratings):
            errors.append(f"{where}: each human score must be a multiple of 0.5")
        if item.human_scores and abs(item.human_score - sum(ratings) / len(ratings)) > 0.01:
            errors.append(f"{where}: human_score must be the mean of human_scores")
        unknown_tags = [t for t in item.tags if t not in KNOWN and ":" not in t]
        if unknown_tags:
            errors.append(f"{where}: unknown tags {unknown_tags}")
        quality = [t for t in item.tags if t in QUALITY]
        if len(quality) != 1:
            errors.append(f"{where}: needs exactly one quality tag of {QUALITY}, has {quality}")
        expected = {c.id for c in question.rubric.criteria}
        scores = item.criterion_scores or {}
        if set(scores) != expected:
            errors.append(f"{where}: criterion_scores keys {sorted(scores)} != {sorted(expected)}")
        elif any(not 0 <= v <= 5 or v != int(v) for v in scores.values()):
            errors.append(f"{where}: criterion scores must be integers 0-5")
        else:
            mapped = overall_score(
                [
                    CriterionScore(
                        criterion_id=c.id,
                        name=c.name,
                        weight=c.weight,
                        score=scores[c.id],
                        justification="",
                    )
                    for c in question.rubric.criteria
                ]
            )
            if abs(mapped - item.human_score) > 1.0 and "wrong_misconception" not in quality:
                warnings.append(
                    f"{where}: human_score {item.human_score} vs rubric mapping {mapped:.1f}"
                )
        if ("empty" in quality or "off_topic" in quality) and ratings[0] != 0:
            errors.append(f"{where}: empty and off-topic answers score 0")
        if "wrong_misconception" in quality and ratings[0] > 1.5:
            errors.append(f"{where}: wrong_misconception answers score at most 1.5")
        if (
            "keyword_stuffing" in item.tags
            and item.relation("stuffing_of") is None
            and ratings[0] > 1.0
        ):
            errors.append(f"{where}: a bare keyword list scores at most 1")
        if "injection" in item.tags and not item.rationale:
            errors.append(f"{where}: injection items need a rationale for the content score")
    for item in items:
        for relation in PAIR_RELATIONS:
            base_id = item.relation(relation)
            if base_id is None:
                continue
            base = by_id.get(base_id)
            where = f"{path}: {item.id}"
            if base is None:
                errors.append(f"{where}: {relation} points at missing item {base_id}")
            elif base.question_id != item.question_id:
                errors.append(f"{where}: {relation} must point at an answer to the same question")
            elif relation != "padding_of" and _first(base) != _first(item):
                # The first annotator labels the pair together; a blind second annotator
                # rates each item alone, so their means may differ (that is disagreement).
                errors.append(
                    f"{where}: {relation} must have the base's score ({_first(base)})"
                )
            elif relation == "padding_of" and not 0 <= base.human_score - item.human_score <= 0.5:
                errors.append(f"{where}: padding keeps the base's score (or 0.5 lower)")
    return errors, warnings, items


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    questions = _questions()
    failed = False
    for name in argv:
        path = Path(name)
        errors, warnings, items = check_file(path, questions)
        for line in errors:
            print(f"error: {line}")
        for line in warnings:
            print(f"warning: {line}")
        tags = Counter(t for i in items for t in i.tags if ":" not in t)
        scores = Counter(i.human_score for i in items)
        print(
            f"{path}: {len(items)} items, {len({i.question_id for i in items})} questions, "
            f"{len(errors)} error(s), {len(warnings)} warning(s)"
        )
        print("  tags: " + ", ".join(f"{t}={n}" for t, n in sorted(tags.items())))
        print("  scores: " + ", ".join(f"{s:g}={n}" for s, n in sorted(scores.items())))
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
