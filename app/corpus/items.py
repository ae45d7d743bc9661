"""What the interviewer asks and the grader grades: one uniform item with a rubric.

A corpus question is already such an item. An inline follow-up, and a bare eval item that
only has a question and a reference answer, get a rubric derived from their key points: one
criterion per key point (or per group of reference sentences), equal weights.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from app.corpus.models import (
    MAX_TEXT_CHARS,
    Corpus,
    Criterion,
    Kind,
    Misconception,
    Question,
    Role,
    Rubric,
)
from app.errors import QuestionNotFoundError
from app.text import split_sentences

GENERIC_LEVELS: dict[int, str] = {
    0: "No answer, or wrong.",
    1: "Mostly wrong or irrelevant; at most a vague mention of the topic.",
    2: "Partial: some correct points, major gaps.",
    3: "Adequate: the core idea is right but depth or key points are missing.",
    4: "Strong: correct and nearly complete, minor gaps.",
    5: "Excellent: complete, precise, with trade-offs or production detail.",
}

FOLLOW_UP_SEPARATOR = "/follow-up-"
MAX_DERIVED_CRITERIA = 5


class InterviewItem(BaseModel):
    """A question as asked and graded: corpus question, inline follow-up, or bare eval item."""

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    reference_answer: str
    rubric: Rubric
    misconceptions: list[Misconception] = []
    topic: str = "general"
    subtopics: list[str] = []
    roles: list[Role] = []
    difficulty: int = 3
    kind: Kind = Kind.CONCEPT
    parent_id: str | None = None
    probes: str | None = None

    @property
    def is_follow_up(self) -> bool:
        return self.parent_id is not None


def derive_rubric(reference_answer: str, key_points: list[str] | None = None) -> Rubric:
    """A rubric from explicit key points, or from the reference answer's sentences.

    Sentences are grouped into at most :data:`MAX_DERIVED_CRITERIA` criteria of neighbouring
    sentences, so a long reference does not become twenty tiny equal-weight criteria.
    """
    points = [p.strip() for p in (key_points or []) if p.strip()]
    if not points:
        points = [s for s in split_sentences(reference_answer) if len(s.split()) >= 3]
    if not points:
        points = [reference_answer.strip() or "A relevant, correct answer."]
    groups: list[list[str]] = []
    size = -(-len(points) // MAX_DERIVED_CRITERIA)  # ceil division
    for start in range(0, len(points), size):
        groups.append(points[start : start + size])
    weight = round(1.0 / len(groups), 6)
    criteria = [
        Criterion(
            id=f"point_{index + 1}",
            name=_clip(_short_name(group[0])),
            weight=weight
            if index < len(groups) - 1
            else round(1.0 - weight * (len(groups) - 1), 6),
            description=_clip(" ".join(group)),
            key_points=[_clip(point) for point in group],
        )
        for index, group in enumerate(groups)
    ]
    return Rubric(criteria=criteria, levels=GENERIC_LEVELS)


def _clip(text: str) -> str:
    """Within the schema's cap on a text field (a long eval reference answer may exceed it)."""
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 3].rstrip() + "..."


def _short_name(text: str, words: int = 8) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + ("..." if len(parts) > words else "")


def item_from_question(question: Question) -> InterviewItem:
    return InterviewItem(
        id=question.id,
        question=question.question,
        reference_answer=question.model_answer,
        rubric=question.rubric,
        misconceptions=question.misconceptions,
        topic=question.topic,
        subtopics=question.subtopics,
        roles=question.roles,
        difficulty=question.difficulty,
        kind=question.kind,
    )


def follow_up_id(parent_id: str, index: int) -> str:
    return f"{parent_id}{FOLLOW_UP_SEPARATOR}{index + 1}"


def item_from_follow_up(corpus: Corpus, parent: Question, index: int) -> InterviewItem:
    """The follow-up as an item: the referenced question, or the inline one with its rubric."""
    follow_up = parent.follow_ups[index]
    if follow_up.ref is not None:
        target = item_from_question(corpus.get(follow_up.ref))
        return target.model_copy(update={"parent_id": parent.id, "probes": follow_up.probes})
    assert follow_up.question is not None  # guaranteed by FollowUp's validator
    return InterviewItem(
        id=follow_up_id(parent.id, index),
        question=follow_up.question,
        reference_answer=" ".join(follow_up.key_points),
        rubric=derive_rubric("", follow_up.key_points),
        misconceptions=[],
        topic=parent.topic,
        subtopics=parent.subtopics,
        roles=parent.roles,
        difficulty=parent.difficulty,
        kind=parent.kind,
        parent_id=parent.id,
        probes=follow_up.probes,
    )


def resolve_item(corpus: Corpus, item_id: str) -> InterviewItem:
    """An item by id, including inline follow-ups (``<parent>/follow-up-<n>``)."""
    if FOLLOW_UP_SEPARATOR in item_id:
        parent_id, _, number = item_id.rpartition(FOLLOW_UP_SEPARATOR)
        parent = corpus.get(parent_id)
        index = int(number) - 1
        if not 0 <= index < len(parent.follow_ups):
            raise QuestionNotFoundError(f"question {parent_id!r} has no follow-up {number}")
        return item_from_follow_up(corpus, parent, index)
    return item_from_question(corpus.get(item_id))
