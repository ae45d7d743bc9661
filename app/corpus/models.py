"""The corpus schema. The YAML files in ``corpus/`` are data; this module is their contract.

Documented for authors in ``corpus/README.md``; keep the two in step (a test checks that
every field named here appears there).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Self

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.errors import QuestionNotFoundError
from app.text import word_count


class Role(StrEnum):
    BACKEND = "backend"
    ML_ENGINEER = "ml_engineer"
    DATA_SCIENTIST = "data_scientist"
    LLM_INFRA = "llm_infra"
    PLATFORM_INFRA = "platform_infra"
    DATA_ENGINEER = "data_engineer"


ROLE_LABELS: dict[Role, str] = {
    Role.BACKEND: "Backend engineer",
    Role.ML_ENGINEER: "ML engineer",
    Role.DATA_SCIENTIST: "Data scientist",
    Role.LLM_INFRA: "LLM / AI infrastructure",
    Role.PLATFORM_INFRA: "Platform / performance",
    Role.DATA_ENGINEER: "Data engineer",
}


class Kind(StrEnum):
    CONCEPT = "concept"
    DESIGN = "design"
    CODE = "code"  # reading or discussing code, answered in prose
    DEBUGGING = "debugging"
    TRADEOFF = "tradeoff"
    CODING = "coding"  # the candidate writes code; graded by running hidden tests


# Every text field has a length cap, so a runaway value (a pasted log, a 5 MB line) is
# rejected with its line before any validator that reads it runs. The caps are several times
# the longest text in the corpus: prose fields (names, key points, levels, corrections) at
# most 2,000 characters, a question or model answer at most 8,000 (a model answer also has
# 100-400 words), and the code of a coding question at most 20,000.
MAX_TEXT_CHARS = 2_000
MAX_LONG_TEXT_CHARS = 8_000
MAX_CODE_CHARS = 20_000


QuestionId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)]
CriterionId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
TopicId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LONG_TEXT_CHARS)
]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CODE_CHARS)
]
SourceUrl = Annotated[str, StringConstraints(pattern=r"^https://\S+$", max_length=300)]


def _specifier(value: str) -> str:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError(
            f"{value!r} is not a version specifier; write e.g. '>=3.11' or '>=3.13,<3.15'"
        ) from None
    return value


PythonSpecifier = Annotated[str, StringConstraints(max_length=100), AfterValidator(_specifier)]

MODEL_ANSWER_WORDS = (100, 400)
CORPUS_CRITERIA = (3, 6)
WEIGHT_SUM_TOLERANCE = 0.001
LEVELS = range(0, 6)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    """One thing a strong answer must do, with the evidence that shows it was done."""

    id: CriterionId
    name: Text
    weight: float = Field(gt=0, le=1)
    description: Text
    key_points: list[Text] = Field(min_length=1, max_length=8)


class Rubric(_Strict):
    """Weighted criteria (weights sum to 1.0) and what each overall level 0-5 means here.

    The overall score is computed in code from the criterion scores, see
    :func:`app.grading.scoring.overall_score`; the ``levels`` describe it for humans.
    """

    criteria: list[Criterion] = Field(min_length=1, max_length=8)
    levels: dict[int, Text]

    @model_validator(mode="after")
    def _check(self) -> Self:
        total = sum(c.weight for c in self.criteria)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"criterion weights must sum to 1.0, they sum to {total:.3f}")
        ids = [c.id for c in self.criteria]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion ids: {', '.join(duplicates)}")
        if set(self.levels) != set(LEVELS):
            raise ValueError("levels must describe exactly the scores 0, 1, 2, 3, 4 and 5")
        return self

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(criterion_id)


class Misconception(_Strict):
    """A wrong claim candidates make, phrased as they would assert it, and the truth."""

    claim: Text
    correction: Text


class FollowUp(_Strict):
    """A follow-up: either ``ref`` to another corpus question, or an inline question.

    ``targets`` names the criteria of the parent question whose miss makes this follow-up
    the right next step; ``probes`` says in words which gap it probes.
    """

    ref: QuestionId | None = None
    question: LongText | None = None
    key_points: list[Text] = Field(default_factory=list, max_length=6)
    probes: Text
    targets: list[CriterionId] = Field(default_factory=list, max_length=6)

    @model_validator(mode="after")
    def _ref_or_inline(self) -> Self:
        if (self.ref is None) == (self.question is None):
            raise ValueError("a follow-up needs exactly one of `ref` (a question id) or `question`")
        if self.question is not None and len(self.key_points) < 2:
            raise ValueError("an inline follow-up needs at least 2 key_points (its short rubric)")
        if self.ref is not None and self.key_points:
            raise ValueError("a `ref` follow-up takes its rubric from the referenced question")
        return self


_CODE_START = re.compile(
    r"^(?:async\s+def|def|class|for|while|with|try|if|import|from\s+\S+\s+import)\b.*:?$"
)


def bare_code_line(text: str) -> str | None:
    """The first line that looks like code but sits outside a fence or an indented block."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        code_like = line.rstrip().endswith(":") and _CODE_START.match(line.strip())
        if code_like and not fenced and not line.startswith(("    ", "\t")):
            return line.strip()
    return None


CORRECTNESS_CRITERION = "correctness"  # a coding question's test-driven criterion


class CodingSpec(_Strict):
    """What a coding question needs to be run and graded (see corpus/README.md).

    The candidate's code is saved as ``solution.py``; the tests are pytest modules that
    import from ``solution``. ``visible_tests`` are shown and run on demand; ``hidden_tests``
    decide the ``correctness`` criterion and are never shown.
    """

    starter: Code
    solution: Code
    visible_tests: Code
    hidden_tests: Code
    time_limit_s: float = Field(default=10.0, gt=0, le=60)
    memory_mb: int = Field(default=512, ge=64, le=4096)


class Question(_Strict):
    id: QuestionId
    topic: TopicId
    subtopics: list[Text] = Field(min_length=1, max_length=12)
    roles: list[Role] = Field(min_length=1)
    difficulty: int = Field(ge=1, le=5)
    kind: Kind
    question: LongText
    model_answer: LongText
    rubric: Rubric
    misconceptions: list[Misconception] = Field(min_length=1, max_length=10)
    follow_ups: list[FollowUp] = Field(min_length=1, max_length=3)
    # e.g. "article" for the seed article's example questions
    source: Annotated[str, StringConstraints(max_length=40)] | None = None
    # Where the answer's claims can be checked (docs or PEP URLs), and the Python versions
    # they hold for (a PEP 440 specifier such as ">=3.11").
    sources: list[SourceUrl] = Field(min_length=1, max_length=8)
    python: PythonSpecifier
    coding: CodingSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.kind == Kind.CODING) != (self.coding is not None):
            raise ValueError("a `coding` block is required for kind: coding, and only for it")
        if self.coding is not None and CORRECTNESS_CRITERION not in {
            c.id for c in self.rubric.criteria
        }:
            raise ValueError(
                f"a coding question's rubric needs a {CORRECTNESS_CRITERION!r} criterion "
                "(scored from the hidden tests)"
            )
        loose = bare_code_line(self.question)
        if loose is not None:
            raise ValueError(
                f"the question has code outside a code block ({loose[:80]!r}); put it in a "
                "```python fence or indent it by 4 spaces, or Markdown joins its lines"
            )
        words = word_count(self.model_answer)
        low, high = MODEL_ANSWER_WORDS
        if not low <= words <= high:
            raise ValueError(f"model_answer has {words} words; it must have {low}-{high}")
        low, high = CORPUS_CRITERIA
        if not low <= len(self.rubric.criteria) <= high:
            raise ValueError(f"a corpus rubric needs {low}-{high} criteria")
        criterion_ids = {c.id for c in self.rubric.criteria}
        for follow_up in self.follow_ups:
            unknown = [t for t in follow_up.targets if t not in criterion_ids]
            if unknown:
                raise ValueError(
                    f"follow-up targets unknown criteria {unknown}; known: {sorted(criterion_ids)}"
                )
            if follow_up.ref == self.id:
                raise ValueError("a follow-up cannot refer to its own question")
        return self

    @property
    def key_points(self) -> list[str]:
        return [point for criterion in self.rubric.criteria for point in criterion.key_points]


class TopicInfo(_Strict):
    id: TopicId
    title: Text
    description: Text


class TopicFile(_Strict):
    """One ``corpus/<topic>.yaml`` file: a topic and its questions."""

    topic: TopicId
    questions: list[Question] = Field(min_length=1)


class TopicsFile(_Strict):
    """``corpus/topics.yaml``: the topics the corpus may use, in display order."""

    version: Text
    topics: list[TopicInfo] = Field(min_length=1)


class PackTopicsFile(_Strict):
    """A question pack's optional ``topics.yaml``: the new topics it adds."""

    version: Text | None = None
    topics: list[TopicInfo] = Field(min_length=1)


class Corpus(BaseModel):
    """The validated corpus: every question by id, and the topics in display order.

    With question packs it is the built-in corpus plus every pack's valid questions;
    ``pack_issues`` lists what was wrong in the packs (``file:line: message``), since a
    broken pack file does not stop the rest from loading.
    """

    model_config = ConfigDict(frozen=True)

    version: str
    topics: dict[str, TopicInfo]
    questions: dict[str, Question]
    packs: list[str] = []
    pack_issues: list[str] = []

    def by_topic(self, topic: str) -> list[Question]:
        return [q for q in self.questions.values() if q.topic == topic]

    def for_role(self, role: Role) -> list[Question]:
        return [q for q in self.questions.values() if role in q.roles]

    def get(self, question_id: str) -> Question:
        question = self.questions.get(question_id)
        if question is None:
            raise QuestionNotFoundError(f"no question with id {question_id!r} in the corpus")
        return question
