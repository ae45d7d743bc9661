"""Load and validate the corpus, reporting every problem as ``file:line: what is wrong``.

YAML is composed into nodes first so that each pydantic error location can be traced back
to the line it came from; cross-file rules (unique ids, follow-up references, known topics)
are checked after every file has validated on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.corpus.models import Corpus, Question, TopicFile, TopicInfo, TopicsFile

TOPICS_FILE = "topics.yaml"


@dataclass(frozen=True, order=True)
class CorpusIssue:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class CorpusError(Exception):
    """The corpus did not validate; ``issues`` holds every problem found."""

    def __init__(self, issues: Sequence[CorpusIssue]) -> None:
        self.issues = sorted(issues)
        listed = "\n".join(str(issue) for issue in self.issues)
        super().__init__(f"{len(self.issues)} problem(s) in the corpus:\n{listed}")


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[int, str]]:
    """PyYAML silently keeps the last of two equal keys; an author almost never means that."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                yield _line(key), f"duplicate key {key.value!r}"
            seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


def _node_at(root: yaml.Node, loc: Sequence[int | str]) -> tuple[yaml.Node, bool]:
    """The deepest node along ``loc``; the flag says whether loc's last part is a key."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, False
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: yaml.Node, loc: Sequence[int | str]) -> yaml.Node | None:
    """The key node for an unknown field, so the error points at the offending key."""
    parent, found = _node_at(root, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if str(key.value) == str(loc[-1]):
                found_key: yaml.Node = key
                return found_key
    return None


def _describe(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "file"


def _validation_issues(
    path: Path, root: yaml.Node, error: ValidationError, question_ids: list[str | None]
) -> list[CorpusIssue]:
    issues = []
    for detail in error.errors():
        loc = [part for part in detail["loc"] if not (isinstance(part, str) and "[" in part)]
        if detail["type"] == "extra_forbidden":
            key = _key_node(root, loc)
            line = _line(key) if key is not None else _line(_node_at(root, loc)[0])
            message = f"unknown field {_describe(loc)!r}"
        else:
            # Point at the key ("rubric:") rather than the first line of its block.
            key = _key_node(root, loc) if loc else None
            line = _line(key) if key is not None else _line(_node_at(root, loc)[0])
            message = f"{_describe(loc)}: {detail['msg']}"
        if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
            qid = question_ids[loc[1]] if loc[1] < len(question_ids) else None
            if qid:
                message = f"question {qid!r}: {message}"
        issues.append(CorpusIssue(path, line, message))
    return issues


# libyaml's parser (bundled in PyYAML's wheels) is about 10x faster than the pure-Python
# one, and its nodes carry the same line marks; the corpus loads at every app start.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class _Parsed:
    path: Path
    root: yaml.Node
    data: Any


def _parse(path: Path) -> tuple[_Parsed | None, list[CorpusIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [CorpusIssue(path, 1, f"cannot read file: {exc}")]
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [CorpusIssue(path, line, f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [CorpusIssue(path, 1, f"invalid YAML: {exc}")]
    if root is None:
        return None, [CorpusIssue(path, 1, "file is empty")]
    issues = [CorpusIssue(path, line, msg) for line, msg in _duplicate_keys(root)]
    constructor = yaml.SafeLoader("")
    data = constructor.construct_document(root)
    return _Parsed(path, root, data), issues


def topic_of_file(path: Path) -> str:
    """``asyncio.yaml`` and ``asyncio.coding.yaml`` both hold questions of topic ``asyncio``."""
    return path.name.split(".", 1)[0]


def _load_topics(corpus_dir: Path) -> tuple[TopicsFile | None, list[CorpusIssue]]:
    path = corpus_dir / TOPICS_FILE
    if not path.is_file():
        return None, [CorpusIssue(path, 1, "missing: the corpus needs a topics.yaml")]
    parsed, issues = _parse(path)
    if parsed is None:
        return None, issues
    try:
        return TopicsFile.model_validate(parsed.data), issues
    except ValidationError as exc:
        return None, issues + _validation_issues(path, parsed.root, exc, [])


def _load_topic_file(
    path: Path, known_topics: dict[str, TopicInfo]
) -> tuple[list[tuple[Question, yaml.Node]], list[CorpusIssue]]:
    parsed, issues = _parse(path)
    if parsed is None:
        return [], issues
    data = parsed.data
    if not isinstance(data, dict):
        return [], [
            *issues,
            CorpusIssue(path, 1, "expected a mapping with `topic` and `questions`"),
        ]
    topic = data.get("topic")
    if topic != topic_of_file(path):
        node, _ = _node_at(parsed.root, ["topic"])
        issues.append(
            CorpusIssue(
                path,
                _line(node),
                f"topic {topic!r} must match file name {path.name!r} "
                "(<topic>.yaml, or <topic>.<part>.yaml for a topic split over files)",
            )
        )
    elif topic not in known_topics:
        node, _ = _node_at(parsed.root, ["topic"])
        issues.append(
            CorpusIssue(path, _line(node), f"topic {topic!r} is not listed in {TOPICS_FILE}")
        )
    raw_questions = data.get("questions")
    question_ids: list[str | None] = []
    if isinstance(raw_questions, list):
        for raw in raw_questions:
            if isinstance(raw, dict):
                raw.setdefault("topic", topic)
                question_ids.append(raw.get("id") if isinstance(raw.get("id"), str) else None)
            else:
                question_ids.append(None)
    try:
        topic_file = TopicFile.model_validate(data)
    except ValidationError as exc:
        return [], issues + _validation_issues(path, parsed.root, exc, question_ids)
    located = []
    for index, question in enumerate(topic_file.questions):
        if question.topic != topic_file.topic:
            node, _ = _node_at(parsed.root, ["questions", index, "topic"])
            issues.append(
                CorpusIssue(path, _line(node), f"question {question.id!r}: topic must be {topic!r}")
            )
        node, _ = _node_at(parsed.root, ["questions", index])
        located.append((question, node))
    return located, issues


def check_corpus(corpus_dir: Path) -> tuple[Corpus | None, list[CorpusIssue]]:
    """Validate every file under ``corpus_dir``; the corpus is returned only if all is well."""
    topics_file, issues = _load_topics(corpus_dir)
    known = {t.id: t for t in topics_file.topics} if topics_file else {}
    questions: dict[str, Question] = {}
    where: dict[str, tuple[Path, yaml.Node]] = {}  # question id -> (file, question node)
    files = sorted(p for p in corpus_dir.glob("*.yaml") if p.name != TOPICS_FILE)
    if not files:
        issues.append(CorpusIssue(corpus_dir / "*.yaml", 1, "no topic files found"))
    for path in files:
        located, file_issues = _load_topic_file(path, known)
        issues.extend(file_issues)
        for question, node in located:
            if question.id in questions:
                first_path, first_node = where[question.id]
                issues.append(
                    CorpusIssue(
                        path,
                        _line(_node_at(node, ["id"])[0]),
                        f"duplicate question id {question.id!r} "
                        f"(first defined at {first_path}:{_line(first_node)})",
                    )
                )
                continue
            questions[question.id] = question
            where[question.id] = (path, node)
    for question in questions.values():
        path, node = where[question.id]
        for index, follow_up in enumerate(question.follow_ups):
            if follow_up.ref is not None and follow_up.ref not in questions:
                ref_node, _ = _node_at(node, ["follow_ups", index, "ref"])
                issues.append(
                    CorpusIssue(
                        path,
                        _line(ref_node),
                        f"question {question.id!r}: follow-up refers to missing question "
                        f"{follow_up.ref!r}",
                    )
                )
    if issues or topics_file is None:
        return None, sorted(set(issues))
    corpus = Corpus(version=topics_file.version, topics=known, questions=questions)
    return corpus, []


def load_corpus(corpus_dir: Path) -> Corpus:
    """The validated corpus, or :class:`CorpusError` listing every problem."""
    corpus, issues = check_corpus(corpus_dir)
    if corpus is None:
        raise CorpusError(issues)
    return corpus
