"""The end-of-session report: scores overall and per topic, strengths, gaps, what to practise.

Built from the stored turns only, so a report can be produced for any past session.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from app.bands import PASS, STRENGTH
from app.corpus.models import Corpus, Role
from app.store import SessionRecord, TurnRecord

MAX_PRACTICE = 6


class TopicScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic: str
    title: str
    mean: float
    answered: int
    skipped: int


class Gap(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_id: str
    topic: str
    question: str
    score: float | None  # None: skipped
    missed_key_points: list[str]
    misconceptions: list[str]


class Practice(BaseModel):
    model_config = ConfigDict(frozen=True)

    question_id: str
    topic: str
    question: str
    why: str


class TurnSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: int
    item_id: str
    topic: str
    question: str
    answer: str | None
    score: float | None
    status: str
    hints: int
    grader: str | None


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    role: str
    mode: str
    grader: str
    model: str | None
    started_at: float
    generated_at: float
    overall: float | None  # skipped questions count as 0
    answered: int
    skipped: int
    per_topic: list[TopicScore]
    strengths: list[str]
    gaps: list[Gap]
    practise_next: list[Practice]
    turns: list[TurnSummary]

    def to_markdown(self) -> str:
        return report_markdown(self)

    def to_json(self) -> str:
        return report_json(self)


def build_report(corpus: Corpus, session: SessionRecord, turns: list[TurnRecord]) -> Report:
    closed = [t for t in turns if t.status in ("graded", "skipped")]
    scores = [t.score if t.status == "graded" and t.score is not None else 0.0 for t in closed]
    by_topic: dict[str, list[TurnRecord]] = defaultdict(list)
    for turn in closed:
        by_topic[turn.topic].append(turn)
    per_topic = []
    for topic, topic_turns in by_topic.items():
        values = [t.score or 0.0 for t in topic_turns]
        per_topic.append(
            TopicScore(
                topic=topic,
                title=corpus.topics[topic].title if topic in corpus.topics else topic,
                mean=round(sum(values) / len(values), 2),
                answered=sum(1 for t in topic_turns if t.status == "graded"),
                skipped=sum(1 for t in topic_turns if t.status == "skipped"),
            )
        )
    per_topic.sort(key=lambda s: -s.mean)

    strengths: list[str] = []
    criterion_scores: dict[str, list[float]] = defaultdict(list)
    for turn in closed:
        if turn.evaluation:
            for criterion in turn.evaluation.criteria:
                criterion_scores[criterion.name].append(criterion.score)
    for topic_score in per_topic:
        if topic_score.mean >= STRENGTH and topic_score.answered:
            strengths.append(f"{topic_score.title}: {topic_score.mean:.1f}/5")
    for name, values in sorted(criterion_scores.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
        if sum(values) / len(values) >= STRENGTH and len(strengths) < 6:
            strengths.append(name)

    gaps = []
    for turn in closed:
        weak = turn.status == "skipped" or (turn.score is not None and turn.score < PASS)
        if not weak:
            continue
        evaluation = turn.evaluation
        gaps.append(
            Gap(
                item_id=turn.item_id,
                topic=turn.topic,
                question=_question_text(corpus, turn),
                score=turn.score if turn.status == "graded" else None,
                missed_key_points=evaluation.missed_key_points[:5] if evaluation else [],
                misconceptions=(
                    [m.claim for m in evaluation.misconceptions if m.verified] if evaluation else []
                ),
            )
        )

    return Report(
        session_id=session.id,
        role=session.role,
        mode=session.mode,
        grader=session.grader,
        model=session.model,
        started_at=session.created_at,
        generated_at=time.time(),
        overall=round(sum(scores) / len(scores), 2) if scores else None,
        answered=sum(1 for t in closed if t.status == "graded"),
        skipped=sum(1 for t in closed if t.status == "skipped"),
        per_topic=per_topic,
        strengths=strengths,
        gaps=gaps,
        practise_next=_practice(corpus, session, turns, gaps),
        turns=[
            TurnSummary(
                position=t.position,
                item_id=t.item_id,
                topic=t.topic,
                question=_question_text(corpus, t),
                answer=t.answer_text,
                score=t.score,
                status=t.status,
                hints=t.hints,
                grader=t.evaluation.grader.grader if t.evaluation else None,
            )
            for t in closed
        ],
    )


def _question_text(corpus: Corpus, turn: TurnRecord) -> str:
    question = corpus.questions.get(turn.item_id)
    return question.question if question else turn.question_text


def _practice(
    corpus: Corpus, session: SessionRecord, turns: list[TurnRecord], gaps: list[Gap]
) -> list[Practice]:
    """Unasked questions for the weak areas: declared follow-ups first, then the same topic."""
    asked = {t.item_id for t in turns}
    role = Role(session.role)
    chosen: list[Practice] = []

    def add(question_id: str, why: str) -> None:
        question = corpus.questions.get(question_id)
        if (
            question is None
            or question_id in asked
            or role not in question.roles
            or any(p.question_id == question_id for p in chosen)
            or len(chosen) >= MAX_PRACTICE
        ):
            return
        chosen.append(
            Practice(
                question_id=question_id, topic=question.topic, question=question.question, why=why
            )
        )

    for gap in gaps:
        parent = corpus.questions.get(gap.item_id)
        for follow_up in parent.follow_ups if parent else []:
            if follow_up.ref:
                add(follow_up.ref, f"follows up on a weak answer: {follow_up.probes}")
    for gap in gaps:
        for question in sorted(corpus.by_topic(gap.topic), key=lambda q: q.difficulty):
            add(question.id, f"more practice in {corpus.topics[gap.topic].title}")
    return chosen


def report_markdown(report: Report) -> str:
    lines = [
        f"# Interview report ({report.role}, {report.mode})",
        "",
        f"- Session: `{report.session_id}`",
        f"- Started: {time.strftime('%Y-%m-%d %H:%M', time.localtime(report.started_at))}",
        f"- Grader: {report.grader}" + (f" ({report.model})" if report.model else ""),
        f"- Overall: **{report.overall:.1f} / 5**"
        if report.overall is not None
        else "- Overall: n/a",
        f"- Answered: {report.answered}, skipped: {report.skipped}",
        "",
        "## Scores by topic",
        "",
        "| topic | mean | answered | skipped |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {t.title} | {t.mean:.1f} | {t.answered} | {t.skipped} |" for t in report.per_topic
    ]
    lines += ["", "## Strengths", ""]
    lines += [f"- {s}" for s in report.strengths] or ["- (none yet)"]
    lines += ["", "## Gaps", ""]
    for gap in report.gaps:
        score = "skipped" if gap.score is None else f"{gap.score:.1f}/5"
        lines.append(f"- **{gap.question}** ({score})")
        lines += [f"  - missed: {point}" for point in gap.missed_key_points]
        lines += [f"  - misconception: {claim}" for claim in gap.misconceptions]
    if not report.gaps:
        lines.append("- (none)")
    lines += ["", "## Practise next", ""]
    lines += [f"- {p.question} _({p.why})_" for p in report.practise_next] or ["- (nothing)"]
    lines += ["", "## Questions", ""]
    for turn in report.turns:
        score = "skipped" if turn.status == "skipped" else f"{turn.score or 0:.1f}/5"
        lines += [f"### {turn.position + 1}. {turn.question} ({score})", ""]
        if turn.answer:
            lines += ["> " + line for line in turn.answer.splitlines()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def report_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
