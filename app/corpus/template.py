"""``interviewer corpus new TOPIC``: a commented topic file with one complete example question.

Every text an author must write starts with ``TODO``; ``interviewer corpus check`` reports
each one left (file:line), so a half-filled template never loads as a question.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from app.corpus.loader import TEMPLATE_MARKER, TOPICS_FILE, parse_file
from app.corpus.models import MODEL_ANSWER_WORDS, Kind, Role
from app.errors import CorpusError

TOPIC_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(CorpusError):
    """The template cannot be written (a bad topic id, or the file is already there)."""


def render_topic_file(topic: str) -> str:
    """The text of ``<topic>.yaml``: parses as it stands; passes the check once filled in."""
    slug = topic.replace("_", "-")
    low, high = MODEL_ANSWER_WORDS
    roles = ", ".join(role.value for role in Role)
    kinds = ", ".join(kind.value for kind in Kind if kind != Kind.CODING)
    todo = TEMPLATE_MARKER
    return f"""\
# Questions for the topic {topic!r}. The schema is documented in corpus/README.md.
# Replace every text that starts with {todo}, then run:
#   interviewer corpus check <this folder>
# The check names each {todo} left (file:line). Copy the question block to add more.
topic: {topic}                     # must equal the file name ({topic}.yaml or {topic}.<part>.yaml)
questions:
  - id: {slug}-first-question       # a stable slug, unique across the corpus and all packs
    subtopics: ["{todo}: a subtopic", "{todo}: another subtopic"]
    roles: [backend]                 # any of: {roles}
    difficulty: 3                    # 1 (screening) .. 5 (staff-level depth)
    kind: concept                    # one of: {kinds}
    question: >-
      {todo}: the question, as the interviewer would say it.
    model_answer: |-
      {todo}: what a strong senior answer says, in {low}-{high} words. Name the APIs,
      mechanisms and trade-offs; each rubric key point below should be said here.
    rubric:
      criteria:                      # 3-6 criteria; the weights sum to 1.0
        - id: first_criterion        # snake_case, unique within the question
          name: "{todo}: a short name"
          weight: 0.4
          description: "{todo}: what this criterion is about."
          key_points:                # 1-8 checkable statements, phrased as a good answer says them
            - "{todo}: a concrete fact a strong answer states."
            - "{todo}: another one."
        - id: second_criterion
          name: "{todo}: a short name"
          weight: 0.3
          description: "{todo}: what this criterion is about."
          key_points:
            - "{todo}: a concrete fact a strong answer states."
        - id: third_criterion
          name: "{todo}: a short name"
          weight: 0.3
          description: "{todo}: what this criterion is about."
          key_points:
            - "{todo}: a concrete fact a strong answer states."
      levels:                        # what each overall score 0-5 means for this question
        0: "{todo}: no answer, or wrong."
        1: "{todo}: what a very weak answer looks like."
        2: "{todo}: a partial answer."
        3: "{todo}: an adequate answer."
        4: "{todo}: a strong answer."
        5: "{todo}: an excellent answer."
    misconceptions:                  # wrong claims, phrased as a candidate would assert them
      - claim: "{todo}: a wrong claim candidates make."
        correction: "{todo}: what is true instead."
    sources:                         # 1-8 https URLs where the claims can be checked (docs, PEPs)
      - https://docs.python.org/3/   # replace with the pages this answer relies on
    python: ">=3.11"                 # the Python versions the claims hold for (PEP 440)
    follow_ups:                      # 1-3: `ref: <question id>` (built-in or this pack), or inline
      - question: "{todo}: a follow-up question."
        key_points:                  # 2-6 key points: the follow-up's own short rubric
          - "{todo}: what its answer should say."
          - "{todo}: and this."
        probes: "{todo}: the gap this follow-up probes."
        targets: [first_criterion]   # criteria whose miss makes this the right follow-up
"""


def render_topics_file(topic: str) -> str:
    """A pack's ``topics.yaml`` adding ``topic``."""
    todo = TEMPLATE_MARKER
    return f"""\
# The new topics this pack adds (questions may also use the built-in topics, unlisted).
topics:
  - id: {topic}
    title: "{todo}: a short title"
    description: "{todo}: one line on what the topic covers."
"""


def _lists_topic(topics: Path, topic: str) -> bool:
    parsed, _ = parse_file(topics)
    data = parsed.data if parsed is not None else None
    listed = data.get("topics") if isinstance(data, dict) else None
    return isinstance(listed, list) and any(
        isinstance(entry, dict) and entry.get("id") == topic for entry in listed
    )


def write_template(
    topic: str, folder: Path, builtin_topics: Collection[str]
) -> tuple[list[Path], str | None]:
    """Write ``folder/<topic>.yaml``, and ``folder/topics.yaml`` when the topic is new and the
    folder has none. Never overwrites a file. Returns the files written and, when the folder
    has a topics.yaml that does not list a new topic, what to add to it."""
    if not TOPIC_ID.match(topic):
        raise TemplateError(
            f"{topic!r} is not a topic id: lowercase letters, digits and '_', starting "
            "with a letter, at most 40 characters"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{topic}.yaml"
    try:
        with path.open("x", encoding="utf-8") as handle:  # "x": fails if it exists
            handle.write(render_topic_file(topic))
    except FileExistsError:
        raise TemplateError(f"{path} already exists; not overwritten") from None
    written = [path]
    topics = folder / TOPICS_FILE
    if topic in builtin_topics:
        return written, None
    if not topics.exists():
        topics.write_text(render_topics_file(topic), encoding="utf-8")
        return [*written, topics], None
    if _lists_topic(topics, topic):
        return written, None
    entry = render_topics_file(topic).split("topics:\n", 1)[1]
    return written, f"{topic!r} is a new topic: add it to {topics}:\n{entry.rstrip()}"
