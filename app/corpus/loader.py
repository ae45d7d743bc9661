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


# Errors about a construct left unfinished (a key with no colon, a quote or a flow list never
# closed) are only detected at a later line, often the end of the file; the construct
# starts at the context mark, and that is the line to fix.
_UNFINISHED = (
    "while scanning a simple key",
    "while scanning a quoted scalar",
    "while parsing a flow",
)


def _yaml_error_line(error: yaml.MarkedYAMLError, text: str) -> int:
    """The 1-based line to fix (PyYAML's marks are 0-based)."""
    unfinished = error.context_mark is not None and (error.context or "").startswith(_UNFINISHED)
    mark = error.context_mark if unfinished else (error.problem_mark or error.context_mark)
    if mark is None:
        return 1
    # A mark at the end of the stream sits after the last line: the fault is on that line.
    last_line = len(text.rstrip().splitlines()) or 1
    return min(mark.line + 1, last_line)


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
        line = _yaml_error_line(exc, text)
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


@dataclass
class _TopicFileResult:
    located: list[tuple[Question, yaml.Node]]  # the questions that validated, with their nodes
    unusable: set[str]  # ids of questions that did not (reported in issues)
    issues: list[CorpusIssue]


def _question_index(loc: Sequence[int | str]) -> int | None:
    """The question an error location is inside, if any: ("questions", 3, ...) -> 3."""
    if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
        return loc[1]
    return None


def _load_topic_file(path: Path, known_topics: dict[str, TopicInfo]) -> _TopicFileResult:
    """One topic file. A question with errors is reported and skipped, not the whole file;
    an error in the file itself (its topic, its shape) makes every question unusable."""
    parsed, issues = _parse(path)
    if parsed is None:
        return _TopicFileResult([], set(), issues)
    data = parsed.data
    if not isinstance(data, dict):
        issues.append(CorpusIssue(path, 1, "expected a mapping with `topic` and `questions`"))
        return _TopicFileResult([], set(), issues)
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
    broken: set[int] = set()
    try:
        TopicFile.model_validate(data)
    except ValidationError as exc:
        issues += _validation_issues(path, parsed.root, exc, question_ids)
        indexes = [_question_index(e["loc"]) for e in exc.errors()]
        if None in indexes:  # the file itself is wrong, not just some of its questions
            return _TopicFileResult([], {q for q in question_ids if q}, issues)
        broken = {i for i in indexes if i is not None}
    located = []
    assert isinstance(raw_questions, list)  # validated above
    for index, raw in enumerate(raw_questions):
        if index in broken:
            continue
        question = Question.model_validate(raw)
        if question.topic != topic:
            node, _ = _node_at(parsed.root, ["questions", index, "topic"])
            issues.append(
                CorpusIssue(path, _line(node), f"question {question.id!r}: topic must be {topic!r}")
            )
        node, _ = _node_at(parsed.root, ["questions", index])
        located.append((question, node))
    unusable = {qid for index, qid in enumerate(question_ids) if index in broken and qid}
    return _TopicFileResult(located, unusable, issues)


def check_corpus(corpus_dir: Path) -> tuple[Corpus | None, list[CorpusIssue]]:
    """Validate every file under ``corpus_dir``; the corpus is returned only if all is well."""
    topics_file, issues = _load_topics(corpus_dir)
    known = {t.id: t for t in topics_file.topics} if topics_file else {}
    questions: dict[str, Question] = {}
    unusable: set[str] = set()  # ids of questions reported as invalid
    where: dict[str, tuple[Path, yaml.Node]] = {}  # question id -> (file, question node)
    files = sorted(p for p in corpus_dir.glob("*.yaml") if p.name != TOPICS_FILE)
    if not files:
        issues.append(CorpusIssue(corpus_dir / "*.yaml", 1, "no topic files found"))
    for path in files:
        loaded = _load_topic_file(path, known)
        issues.extend(loaded.issues)
        unusable |= loaded.unusable
        for question, node in loaded.located:
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
                problem = (
                    f"follow-up refers to {follow_up.ref!r}, which has errors (see its file)"
                    if follow_up.ref in unusable
                    else f"follow-up refers to missing question {follow_up.ref!r}"
                )
                issues.append(
                    CorpusIssue(path, _line(ref_node), f"question {question.id!r}: {problem}")
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
