"""Coverage of the corpus: counts by topic, role, difficulty and kind, and the minimums."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.corpus.models import Corpus, Kind, Role

MIN_QUESTIONS = 150
MIN_PER_TOPIC = 8
MIN_PER_ROLE = 25
ARTICLE_EXAMPLES = 6


@dataclass
class Coverage:
    total: int
    by_topic: Counter[str]
    by_role: Counter[Role]
    by_topic_role: Counter[tuple[str, Role]]
    by_difficulty: Counter[int]
    by_kind: Counter[Kind]
    article_examples: int
    shortfalls: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.shortfalls


def coverage(corpus: Corpus) -> Coverage:
    questions = list(corpus.questions.values())
    result = Coverage(
        total=len(questions),
        by_topic=Counter(q.topic for q in questions),
        by_role=Counter(role for q in questions for role in q.roles),
        by_topic_role=Counter((q.topic, role) for q in questions for role in q.roles),
        by_difficulty=Counter(q.difficulty for q in questions),
        by_kind=Counter(q.kind for q in questions),
        article_examples=sum(1 for q in questions if q.source == "article"),
    )
    if result.total < MIN_QUESTIONS:
        result.shortfalls.append(
            f"{result.total} questions in all; at least {MIN_QUESTIONS} needed"
        )
    for topic in corpus.topics:
        if result.by_topic[topic] < MIN_PER_TOPIC:
            result.shortfalls.append(
                f"topic {topic}: {result.by_topic[topic]} questions; "
                f"at least {MIN_PER_TOPIC} needed"
            )
    for role in Role:
        if result.by_role[role] < MIN_PER_ROLE:
            result.shortfalls.append(
                f"role {role}: {result.by_role[role]} questions; at least {MIN_PER_ROLE} needed"
            )
    if result.article_examples < ARTICLE_EXAMPLES:
        result.shortfalls.append(
            f"{result.article_examples} of the article's {ARTICLE_EXAMPLES} "
            "example questions present"
        )
    return result


def render_table(corpus: Corpus, cov: Coverage) -> str:
    """A plain-text topic x role table, then difficulty and kind spreads."""
    roles = list(Role)
    short = {
        Role.BACKEND: "backend",
        Role.ML_ENGINEER: "ml_eng",
        Role.DATA_SCIENTIST: "data_sci",
        Role.LLM_INFRA: "llm_infra",
        Role.PLATFORM_INFRA: "platform",
        Role.DATA_ENGINEER: "data_eng",
    }
    width = max(len(t) for t in [*corpus.topics, "topic"]) + 2
    header = "topic".ljust(width) + "".join(short[r].rjust(10) for r in roles) + "total".rjust(8)
    lines = [header, "-" * len(header)]
    for topic in corpus.topics:
        row = topic.ljust(width)
        row += "".join(str(cov.by_topic_role[(topic, r)]).rjust(10) for r in roles)
        lines.append(row + str(cov.by_topic[topic]).rjust(8))
    lines.append("-" * len(header))
    lines.append(
        "all".ljust(width)
        + "".join(str(cov.by_role[r]).rjust(10) for r in roles)
        + str(cov.total).rjust(8)
    )
    lines.append("")
    lines.append("difficulty: " + ", ".join(f"{d}: {cov.by_difficulty[d]}" for d in range(1, 6)))
    lines.append("kind: " + ", ".join(f"{k}: {cov.by_kind[k]}" for k in Kind))
    lines.append(f"article example questions: {cov.article_examples} of {ARTICLE_EXAMPLES}")
    return "\n".join(lines)
