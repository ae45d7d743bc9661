"""Coverage of the corpus: counts by topic, role, difficulty and kind, and the minimums.

The minimums hold for the built-in corpus (``interviewer corpus check`` fails without them).
For a question pack checked on its own they are information only: a team's pack of five
questions is fine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.corpus.models import Corpus, Kind, Role

MIN_QUESTIONS = 320
MIN_PER_TOPIC = 10
MIN_PER_ROLE = 80
# Questions a topic needs at each difficulty: every level present, and at least two at the
# two lowest levels, so that stepping down after a weak answer has somewhere to go.
MIN_PER_LEVEL: dict[int, int] = {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}
DIFFICULTIES = range(1, 6)
ARTICLE_EXAMPLES = 6


@dataclass
class Coverage:
    total: int
    by_topic: Counter[str]
    by_role: Counter[Role]
    by_topic_role: Counter[tuple[str, Role]]
    by_topic_difficulty: Counter[tuple[str, int]]
    by_difficulty: Counter[int]
    by_kind: Counter[Kind]
    article_examples: int
    shortfalls: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.shortfalls


def coverage(corpus: Corpus, *, article_examples: bool = True) -> Coverage:
    """Counts and every shortfall against the minimums; ``article_examples=False`` leaves
    out the built-in corpus's own rule that the seed article's six questions are present."""
    questions = list(corpus.questions.values())
    result = Coverage(
        total=len(questions),
        by_topic=Counter(q.topic for q in questions),
        by_role=Counter(role for q in questions for role in q.roles),
        by_topic_role=Counter((q.topic, role) for q in questions for role in q.roles),
        by_topic_difficulty=Counter((q.topic, q.difficulty) for q in questions),
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
        counts = [result.by_topic_difficulty[(topic, d)] for d in DIFFICULTIES]
        if any(counts[d - 1] < MIN_PER_LEVEL[d] for d in DIFFICULTIES):
            result.shortfalls.append(
                f"topic {topic}: {'/'.join(map(str, counts))} questions at levels 1/2/3/4/5; "
                f"at least {'/'.join(str(MIN_PER_LEVEL[d]) for d in DIFFICULTIES)} needed"
            )
    for role in Role:
        if result.by_role[role] < MIN_PER_ROLE:
            result.shortfalls.append(
                f"role {role}: {result.by_role[role]} questions; at least {MIN_PER_ROLE} needed"
            )
    if article_examples and result.article_examples < ARTICLE_EXAMPLES:
        result.shortfalls.append(
            f"{result.article_examples} of the article's {ARTICLE_EXAMPLES} "
            "example questions present"
        )
    return result


def render_table(corpus: Corpus, cov: Coverage, *, article_examples: bool = True) -> str:
    """A plain-text topic x role table with each topic's questions per level (L1-L5), then
    the difficulty and kind spreads."""
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
    header = (
        "topic".ljust(width)
        + "".join(short[r].rjust(10) for r in roles)
        + "total".rjust(8)
        + "  "
        + "".join(f"L{d}".rjust(4) for d in DIFFICULTIES)
    )
    lines = [header, "-" * len(header)]
    for topic in corpus.topics:
        row = topic.ljust(width)
        row += "".join(str(cov.by_topic_role[(topic, r)]).rjust(10) for r in roles)
        row += str(cov.by_topic[topic]).rjust(8) + "  "
        row += "".join(str(cov.by_topic_difficulty[(topic, d)]).rjust(4) for d in DIFFICULTIES)
        lines.append(row)
    lines.append("-" * len(header))
    lines.append(
        "all".ljust(width)
        + "".join(str(cov.by_role[r]).rjust(10) for r in roles)
        + str(cov.total).rjust(8)
        + "  "
        + "".join(str(cov.by_difficulty[d]).rjust(4) for d in DIFFICULTIES)
    )
    lines.append("")
    lines.append("difficulty: " + ", ".join(f"{d}: {cov.by_difficulty[d]}" for d in DIFFICULTIES))
    lines.append("kind: " + ", ".join(f"{k}: {cov.by_kind[k]}" for k in Kind))
    if article_examples:
        lines.append(f"article example questions: {cov.article_examples} of {ARTICLE_EXAMPLES}")
    return "\n".join(lines)
