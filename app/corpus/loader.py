"""Load and validate the corpus, reporting every problem as ``file:line: what is wrong``.

YAML is composed into nodes first so that each pydantic error location can be traced back
to the line it came from; cross-file rules (unique ids, follow-up references, known topics)
are checked after every file has validated on its own.

The corpus is the built-in folder plus any question packs (extra folders of the same
layout). Every problem is reported, and what is valid still loads: a question with an error
is skipped, not its file; a file that cannot be read or parsed is skipped, not its pack; the
first of two questions with one id wins. The input is untrusted: files are capped in size,
every text field in length, and YAML aliases (the stuff of "billion laughs" bombs) are
refused, so a hostile pack costs milliseconds, not memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.corpus.models import (
    Corpus,
    PackTopicsFile,
    Question,
    TopicFile,
    TopicInfo,
    TopicsFile,
)
from app.errors import CorpusError

log = logging.getLogger(__name__)

TOPICS_FILE = "topics.yaml"
MAX_FILE_BYTES = 2 * 1024 * 1024  # the largest built-in file is about 110 KB
TEMPLATE_MARKER = "TODO"  # what `interviewer corpus new` leaves for the author to replace


@dataclass(frozen=True, order=True)
class CorpusIssue:
    path: Path
    line: int
    message: str
    pack: Path | None = field(default=None, compare=False)  # None: the built-in corpus

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class CorpusInvalidError(CorpusError):
    """The corpus did not validate; ``issues`` holds every problem found."""

    def __init__(self, issues: Sequence[CorpusIssue]) -> None:
        self.issues = sorted(issues)
        listed = "\n".join(str(issue) for issue in self.issues)
        super().__init__(f"{len(self.issues)} problem(s) in the corpus:\n{listed}")


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _walk(root: yaml.Node) -> tuple[yaml.Node | None, list[tuple[int, str]]]:
    """Visit every node once: the first node reached twice, and any duplicate keys.

    A node reached twice is the target of an alias (``*name``). Aliases are how a few
    hundred bytes of YAML expand into billions of values, so the corpus refuses them;
    composing is still cheap (an alias is the same node object), and this walk never
    follows one. PyYAML silently keeps the last of two equal keys, which an author almost
    never means, so those are reported too.
    """
    seen: set[int] = set()
    duplicates: list[tuple[int, str]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return node, duplicates
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        duplicates.append((_line(key), f"duplicate key {key.value!r}"))
                    keys.add(key.value)
                stack += [value, key]
        elif isinstance(node, yaml.SequenceNode):
            stack += reversed(node.value)
    return None, duplicates


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
class ParsedFile:
    """A parsed YAML file: its composed node tree (with line marks) and the plain data."""

    path: Path
    root: yaml.Node
    data: Any


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


def _read_text(path: Path) -> tuple[str | None, list[CorpusIssue]]:
    """The file as text: a regular file, within the size cap and valid UTF-8."""
    if not path.is_file():  # a FIFO or a device named *.yaml would block or never end
        return None, [CorpusIssue(path, 1, "not a regular file")]
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # never more than the cap in memory
            size = path.stat().st_size
    except OSError as exc:
        return None, [CorpusIssue(path, 1, f"cannot read file: {exc.strerror or exc}")]
    if len(data) > MAX_FILE_BYTES:
        line = data.count(b"\n", 0, MAX_FILE_BYTES) + 1
        return None, [
            CorpusIssue(
                path,
                line,
                f"file too large ({_size(size)}; a corpus file may have at most "
                f"{_size(MAX_FILE_BYTES)}), the limit is passed on this line; split the topic "
                "over <topic>.<part>.yaml files",
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        return None, [
            CorpusIssue(
                path,
                line,
                f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {column}; "
                "save the file as UTF-8",
            )
        ]
    return text.removeprefix("\ufeff"), []


def parse_file(path: Path) -> tuple[ParsedFile | None, list[CorpusIssue]]:
    """A corpus YAML file as nodes (for line numbers) and data, or what is wrong and where.

    Safe on untrusted input: at most :data:`MAX_FILE_BYTES` are read, aliases are refused
    before anything is constructed, and only plain YAML types are built (no tags).
    """
    text, issues = _read_text(path)
    if text is None:
        return None, issues
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        line = _yaml_error_line(exc, text)
        return None, [CorpusIssue(path, line, f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [CorpusIssue(path, 1, f"invalid YAML: {exc}")]
    if root is None:
        return None, [CorpusIssue(path, 1, "file is empty")]
    shared, duplicates = _walk(root)
    if shared is not None:
        return None, [
            CorpusIssue(
                path,
                _line(shared),
                "YAML aliases (*name) are not allowed in corpus files, and this anchored "
                "value is reused by one; write each value out in full",
            )
        ]
    issues = [CorpusIssue(path, line, message) for line, message in duplicates]
    try:
        data = yaml.SafeLoader("").construct_document(root)
    except yaml.MarkedYAMLError as exc:  # e.g. an unknown tag such as !!python/object
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [*issues, CorpusIssue(path, line, f"invalid YAML: {exc.problem or exc}")]
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int x`
        return None, [*issues, CorpusIssue(path, 1, f"invalid YAML value: {exc}")]
    return ParsedFile(path, root, data), issues


def topic_of_file(path: Path) -> str:
    """``asyncio.yaml`` and ``asyncio.coding.yaml`` both hold questions of topic ``asyncio``."""
    return path.name.split(".", 1)[0]


def _load_topics(corpus_dir: Path) -> tuple[TopicsFile | None, list[CorpusIssue]]:
    path = corpus_dir / TOPICS_FILE
    if not path.is_file():
        return None, [CorpusIssue(path, 1, "missing: the corpus needs a topics.yaml")]
    parsed, issues = parse_file(path)
    if parsed is None:
        return None, issues
    try:
        return TopicsFile.model_validate(parsed.data), issues
    except ValidationError as exc:
        return None, issues + _validation_issues(path, parsed.root, exc, [])


@dataclass
class _TopicFileResult:
    topic: str | None  # the file's topic, if the file itself is sound
    located: list[tuple[Question, yaml.Node]]  # the questions that validated, with their nodes
    unusable: set[str]  # ids of questions that did not (reported in issues)
    issues: list[CorpusIssue]


def _question_index(loc: Sequence[int | str]) -> int | None:
    """The question an error location is inside, if any: ("questions", 3, ...) -> 3."""
    if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
        return loc[1]
    return None


Located = tuple[yaml.Node, list[int | str]]


def _template_leftovers(node: yaml.Node, loc: list[int | str]) -> list[Located]:
    """Text values still starting with the template's TODO marker (`corpus new` writes them)."""
    found: list[Located] = []
    stack: list[Located] = [(node, loc)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, yaml.MappingNode):
            stack += [(value, [*where, str(key.value)]) for key, value in current.value]
        elif isinstance(current, yaml.SequenceNode):
            stack += [(item, [*where, index]) for index, item in enumerate(current.value)]
        elif isinstance(current.value, str) and current.value.startswith(TEMPLATE_MARKER):
            found.append((current, where))
    return sorted(found, key=lambda pair: _line(pair[0]))


def _leftover_issues(
    path: Path, node: yaml.Node, loc: list[int | str], qid: str | None
) -> list[CorpusIssue]:
    issues = []
    for leftover, where in _template_leftovers(node, loc):
        message = (
            f"{_describe(where)}: still holds the template's {TEMPLATE_MARKER} text; write your own"
        )
        if qid:
            message = f"question {qid!r}: {message}"
        issues.append(CorpusIssue(path, _line(leftover), message))
    return issues


TopicRule = Callable[[str], str | None]  # a topic -> why this file may not use it, or None


def _load_topic_file(path: Path, topic_rule: TopicRule) -> _TopicFileResult:
    """One topic file. A question with errors is reported and skipped, not the whole file;
    an error in the file itself (its topic, its shape) makes every question unusable."""
    parsed, issues = parse_file(path)
    if parsed is None:
        return _TopicFileResult(None, [], set(), issues)
    data = parsed.data
    if not isinstance(data, dict):
        issues.append(CorpusIssue(path, 1, "expected a mapping with `topic` and `questions`"))
        return _TopicFileResult(None, [], set(), issues)
    topic = data.get("topic")
    topic_node, _ = _node_at(parsed.root, ["topic"])
    file_ok = False
    if topic != topic_of_file(path):
        issues.append(
            CorpusIssue(
                path,
                _line(topic_node),
                f"topic {topic!r} must match file name {path.name!r} "
                "(<topic>.yaml, or <topic>.<part>.yaml for a topic split over files)",
            )
        )
    elif (problem := topic_rule(topic)) is not None:
        issues.append(CorpusIssue(path, _line(topic_node), problem))
    else:
        file_ok = True
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
    for index, qid in enumerate(question_ids):
        node, _ = _node_at(parsed.root, ["questions", index])
        leftovers = _leftover_issues(path, node, ["questions", index], qid)
        if leftovers:
            issues += leftovers
            broken.add(index)
    try:
        TopicFile.model_validate(data)
    except ValidationError as exc:
        issues += _validation_issues(path, parsed.root, exc, question_ids)
        indexes = [_question_index(e["loc"]) for e in exc.errors()]
        if None in indexes:  # the file itself is wrong, not just some of its questions
            return _TopicFileResult(None, [], {q for q in question_ids if q}, issues)
        broken |= {i for i in indexes if i is not None}
    located = []
    assert isinstance(raw_questions, list)  # validated above
    for index, raw in enumerate(raw_questions):
        if index in broken:
            continue
        question = Question.model_validate(raw)
        node, _ = _node_at(parsed.root, ["questions", index])
        if question.topic == topic:
            located.append((question, node))
            continue
        topic_at, _ = _node_at(node, ["topic"])
        issues.append(
            CorpusIssue(path, _line(topic_at), f"question {question.id!r}: topic must be {topic!r}")
        )
        broken.add(index)
    unusable = {qid for index, qid in enumerate(question_ids) if index in broken and qid}
    if not file_ok:
        unusable |= {question.id for question, _ in located}
        located = []
    return _TopicFileResult(topic if file_ok else None, located, unusable, issues)


def _topic_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.name != TOPICS_FILE)


def _where(path: Path, line: int, pack: Path | None) -> str:
    return f"{path}:{line}" + ("" if pack is None else f" in pack {pack}")


@dataclass
class CorpusReport:
    """What reading found: every problem, and the corpus of everything that is valid.

    ``corpus`` is None only when the built-in ``topics.yaml`` is unusable. ``origins`` says
    where each loaded question came from: its pack folder, or None for the built-in corpus.
    """

    corpus: Corpus | None
    issues: list[CorpusIssue]
    origins: dict[str, Path | None] = field(default_factory=dict)
    topic_origins: dict[str, Path | None] = field(default_factory=dict)
    pack_versions: dict[Path, str] = field(default_factory=dict)

    def part(self, pack: Path | None) -> Corpus:
        """The questions of one pack (None: the built-in corpus) with the topics they use and
        the topics the pack defines, in display order: what ``corpus check PATH`` reports."""
        assert self.corpus is not None
        questions = {
            qid: q for qid, q in self.corpus.questions.items() if self.origins.get(qid) == pack
        }
        used = {q.topic for q in questions.values()}
        topics = {
            tid: info
            for tid, info in self.corpus.topics.items()
            if tid in used or self.topic_origins.get(tid) == pack
        }
        version = self.pack_versions.get(pack) if pack is not None else None
        return Corpus(
            version=version or self.corpus.version,
            topics=topics,
            questions=questions,
            packs=[] if pack is None else [str(pack)],
        )


class _Reader:
    """Reads the built-in corpus, then each pack, then resolves the follow-up references."""

    def __init__(self) -> None:
        self.issues: list[CorpusIssue] = []
        self.version: str | None = None
        self.topics: dict[str, TopicInfo] = {}
        self.topic_where: dict[str, tuple[Path, int, Path | None]] = {}
        self.questions: dict[str, Question] = {}
        self.where: dict[str, tuple[Path, yaml.Node, Path | None]] = {}
        self.unusable: set[str] = set()  # ids of questions reported as invalid
        self.packs: list[Path] = []
        self.pack_versions: dict[Path, str] = {}

    def report(self, issues: Iterable[CorpusIssue], pack: Path | None) -> None:
        self.issues += [replace(issue, pack=pack) for issue in issues]

    def _topics_file(
        self, path: Path, model: type[TopicsFile] | type[PackTopicsFile], pack: Path | None
    ) -> TopicsFile | PackTopicsFile | None:
        """Read a topics.yaml and add its topics; a topic defined before is reported."""
        parsed, issues = parse_file(path)
        self.report(issues, pack)
        if parsed is None:
            return None
        try:
            topics_file = model.model_validate(parsed.data)
        except ValidationError as exc:
            self.report(_validation_issues(path, parsed.root, exc, []), pack)
            return None
        self.report(_leftover_issues(path, parsed.root, [], None), pack)
        for index, info in enumerate(topics_file.topics):
            line = _line(_node_at(parsed.root, ["topics", index, "id"])[0])
            if info.id not in self.topic_where:
                self.topics[info.id] = info
                self.topic_where[info.id] = (path, line, pack)
                continue
            first_path, first_line, first_pack = self.topic_where[info.id]
            why = (
                "a pack's topics.yaml lists only new topics (its questions may use the "
                "built-in topics without listing them)"
                if first_pack is None and pack is not None
                else "a topic is defined once"
            )
            message = (
                f"topic {info.id!r} is already defined at "
                f"{_where(first_path, first_line, first_pack)}; {why}"
            )
            self.report([CorpusIssue(path, line, message)], pack)
        return topics_file

    def add_builtin(self, corpus_dir: Path) -> None:
        path = corpus_dir / TOPICS_FILE
        if not path.is_file():
            self.report([CorpusIssue(path, 1, "missing: the corpus needs a topics.yaml")], None)
        elif (topics_file := self._topics_file(path, TopicsFile, None)) is not None:
            self.version = topics_file.version

        def rule(topic: str) -> str | None:
            if topic in self.topics and self.topic_where[topic][2] is None:
                return None
            return f"topic {topic!r} is not listed in {TOPICS_FILE}"

        files = _topic_files(corpus_dir)
        if not files:
            self.report([CorpusIssue(corpus_dir / "*.yaml", 1, "no topic files found")], None)
        for file in files:
            self._add_file(file, rule, None)

    def add_pack(self, pack: Path) -> None:
        if not pack.is_dir():
            what = "does not exist" if not pack.exists() else "is not a directory"
            self.report([CorpusIssue(pack, 1, f"question pack folder {what}")], pack)
            return
        self.packs.append(pack)
        before = set(self.topics)
        path = pack / TOPICS_FILE
        if path.exists():
            topics_file = self._topics_file(path, PackTopicsFile, pack)
            if topics_file is not None and topics_file.version:
                self.pack_versions[pack] = topics_file.version
        own = [topic for topic in self.topics if topic not in before]

        def rule(topic: str) -> str | None:
            if topic not in self.topics:
                return (
                    f"topic {topic!r} is neither a built-in topic nor listed in this pack's "
                    f"{TOPICS_FILE}"
                )
            first_path, first_line, owner = self.topic_where[topic]
            if owner is None or owner == pack:
                return None
            return (
                f"topic {topic!r} belongs to pack {owner} ({first_path}:{first_line}); "
                "a pack may use the built-in topics and its own"
            )

        files = _topic_files(pack)
        if not files:
            self.report(
                [CorpusIssue(pack / "*.yaml", 1, "no topic files found (<topic>.yaml)")], pack
            )
        used = {self._add_file(file, rule, pack) for file in files}
        for topic in own:
            if topic not in used:  # listed, but no file of the pack holds its questions
                topic_path, line, _ = self.topic_where.pop(topic)
                del self.topics[topic]
                message = (
                    f"topic {topic!r} has no questions: add {topic}.yaml to the pack or "
                    "remove the topic"
                )
                self.report([CorpusIssue(topic_path, line, message)], pack)

    def _add_file(self, path: Path, rule: TopicRule, pack: Path | None) -> str | None:
        loaded = _load_topic_file(path, rule)
        self.report(loaded.issues, pack)
        self.unusable |= loaded.unusable
        for question, node in loaded.located:
            if question.id not in self.where:
                self.questions[question.id] = question
                self.where[question.id] = (path, node, pack)
                continue
            first_path, first_node, first_pack = self.where[question.id]
            first = _where(first_path, _line(first_node), first_pack)
            message = f"duplicate question id {question.id!r} (first defined at {first})"
            if pack is not None:
                message += "; the first definition is used"
            self.report([CorpusIssue(path, _line(_node_at(node, ["id"])[0]), message)], pack)
        return loaded.topic

    def _ref_problem(self, question: Question, ref: str) -> str:
        """Why a follow-up's ``ref`` cannot be followed, or "" if it can."""
        if ref not in self.questions:
            if ref in self.unusable:
                return f": follow-up refers to {ref!r}, which has errors (see its file)"
            return f": follow-up refers to missing question {ref!r}"
        source, target = self.where[question.id][2], self.where[ref][2]
        if target is None or target == source:
            return ""
        if source is None:
            return (
                f" refers to {ref!r}, which is in pack {target}; the built-in corpus "
                "may refer only to itself"
            )
        return (
            f" in pack {source} refers to {ref!r}, which is in pack {target}; "
            "a pack may refer to the built-in corpus and to itself"
        )

    def resolve(self) -> CorpusReport:
        """Check follow-up references and drop the questions whose follow-ups cannot be
        followed, then any question whose follow-up pointed at a dropped one (for a pack
        question that is reported too; a problem in the built-in corpus fails it anyway)."""
        usable = dict(self.questions)
        for question in self.questions.values():
            path, node, pack = self.where[question.id]
            for index, follow_up in enumerate(question.follow_ups):
                if follow_up.ref is not None and (
                    problem := self._ref_problem(question, follow_up.ref)
                ):
                    ref_node, _ = _node_at(node, ["follow_ups", index, "ref"])
                    message = f"question {question.id!r}{problem}"
                    self.report([CorpusIssue(path, _line(ref_node), message)], pack)
                    usable.pop(question.id, None)
        dropped = True
        while dropped:
            dropped = False
            for question in list(usable.values()):
                gone = [
                    (index, follow_up.ref)
                    for index, follow_up in enumerate(question.follow_ups)
                    if follow_up.ref is not None and follow_up.ref not in usable
                ]
                if not gone:
                    continue
                del usable[question.id]
                dropped = True
                path, node, pack = self.where[question.id]
                if pack is not None:
                    index, ref = gone[0]
                    ref_node, _ = _node_at(node, ["follow_ups", index, "ref"])
                    message = (
                        f"question {question.id!r}: follow-up refers to {ref!r}, which is not "
                        "loaded (see its problem), so this question is not loaded either"
                    )
                    self.report([CorpusIssue(path, _line(ref_node), message)], pack)
        issues = sorted(set(self.issues))
        if self.version is None:
            return CorpusReport(None, issues)
        corpus = Corpus(
            version=self.version,
            topics=dict(self.topics),
            questions=usable,
            packs=[str(pack) for pack in self.packs],
            pack_issues=[str(issue) for issue in issues if issue.pack is not None],
        )
        return CorpusReport(
            corpus,
            issues,
            origins={qid: self.where[qid][2] for qid in usable},
            topic_origins={tid: where[2] for tid, where in self.topic_where.items()},
            pack_versions=dict(self.pack_versions),
        )


def read_corpus(corpus_dir: Path, packs: Iterable[Path] = ()) -> CorpusReport:
    """Read the built-in corpus, then the question packs in the order given, reporting every
    problem; of two questions with one id, the first read is kept."""
    reader = _Reader()
    seen = {corpus_dir.resolve()}
    reader.add_builtin(corpus_dir)
    for pack in packs:
        resolved = pack.resolve()
        if resolved == corpus_dir.resolve():
            message = "this is the built-in corpus folder, not a question pack"
            reader.report([CorpusIssue(pack, 1, message)], pack)
        elif resolved not in seen:  # the same folder named twice is read once
            seen.add(resolved)
            reader.add_pack(pack)
    return reader.resolve()


def check_corpus(
    corpus_dir: Path, packs: Iterable[Path] = ()
) -> tuple[Corpus | None, list[CorpusIssue]]:
    """Validate every file of the corpus and the packs; the corpus only if all is well."""
    report = read_corpus(corpus_dir, packs)
    if report.issues or report.corpus is None:
        return None, report.issues
    return report.corpus, []


def load_corpus(corpus_dir: Path, packs: Iterable[Path] = ()) -> Corpus:
    """The built-in corpus plus the valid questions of every question pack.

    A problem in the built-in corpus raises :class:`CorpusInvalidError` listing every problem (it
    ships validated). A problem in a pack is logged as a warning and listed in the corpus's
    ``pack_issues``; the pack's valid questions load all the same.
    """
    report = read_corpus(corpus_dir, packs)
    builtin = [issue for issue in report.issues if issue.pack is None]
    if report.corpus is None or builtin:
        raise CorpusInvalidError(builtin or report.issues)
    for issue in report.issues:
        log.warning("question pack: %s", issue)
    return report.corpus
