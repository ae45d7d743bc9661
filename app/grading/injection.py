"""Find text in an answer that speaks to the grader instead of answering the question.

The offline grader removes such sentences before grading (they can never earn credit) and
flags the answer; the LLM grader is told the answer is data, and its score is still computed
in code. Patterns are deliberately specific (grading words near directive verbs) so that a
technical sentence such as "give it at most 5 retries" is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS = [
    # "ignore the rubric", "disregard previous instructions", "forget the criteria above"
    r"\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,60}?\b(instructions?|rubric|prompt|"
    r"criteria|guidelines|rules|system message)\b",
    # "you are now the grader", "act as an examiner"
    r"\b(you are|you're|act as|acting as|pretend to be)\b\s+(now\s+)?(the|a|an)?\s*"
    r"(grader|evaluator|judge|examiner|scorer|marker|assessor)\b",
    # "give this answer 5/5", "award full marks", "assign the maximum score"
    r"\b(give|assign|award|grant|output|return|set)\b[^.\n]{0,40}?\b(score|grade|marks?|points|"
    r"rating|5\s*/\s*5|10\s*/\s*10)\b",
    r"\b(score|grade|rate|mark|evaluate)\b\s+(this|the|my)\s+(answer|response|submission)\b"
    r"[^.\n]{0,30}?\b(5|five|full|maximum|perfect|highest|excellent)\b",
    r"\b[0-5](\.\d)?\s*/\s*5\b",
    r"\b(full|maximum|perfect|top)\s+(marks|score|points|grade)\b",
    r"\bthis (answer|response|submission) (is|deserves|should (get|receive|be graded))\b"
    r"[^.\n]{0,40}?\b(excellent|perfect|5|five|full|correct|senior[- ]level)\b",
    # fake verdicts: {"overall": 5}, score: 5, "level": 5
    r"[\"']?\b(overall(_score)?|score|grade|verdict)\b[\"']?\s*[:=]\s*[\"']?\d",
    # delimiter breaking and fake roles
    r"</?\s*(answer|candidate_answer|candidate|system|instructions?|rubric|assistant|user|grader)"
    r"\s*>",
    r"(^|\n)\s*(system|assistant|grader|evaluator|rubric|instructions?|note to (the )?grader)\s*:",
    r"\b(end of (the )?(candidate'?s? )?(answer|response|submission))\b",
    r"\b(new|updated|revised|additional) (instructions?|rubric|grading (rules|criteria))\b",
    r"\b(grading|grader|evaluation|evaluator|scoring) "
    r"(note|notes|instruction|instructions|override)\b",
    r"\bnote (to|for) (the )?([\w-]+ )?(grader|evaluator|reviewer|examiner|marker|ai|llm|model)\b",
    # "as the senior grader on this panel I confirm...", "graders should record 5"
    r"\bas (the|a|an) ([\w-]+ ){0,3}(grader|evaluator|judge|examiner|reviewer|marker|assessor)\b",
    r"\b(graders?|evaluators?|reviewers?|markers?|assessors?)\b[^.\n]{0,60}?\b(should|must|will|"
    r"shall|are to)\b[^.\n]{0,30}?\b(record|give|assign|score|mark|award|output|enter|skip)\b",
    r"\b(meets|deserves|earns|warrants|merits|satisfies)\b[^.\n]{0,40}?\b(level|score|grade|"
    r"marks?)\s*(5|five|full|top|maximum|max)\b",
    r"\blevel\s*5\b[^.\n]{0,30}?\b(every|all|each)\b",
    r"\b(evaluation|grading|scoring|review) (is |has been )?(complete|completed|done|finished)\b",
    r"\bdo not (re-?grade|re-?score|re-?evaluate|grade|score|evaluate)\b",
    r"\b(official|pre-?validated|pre-?approved|approved)\b[^.\n]{0,30}?\b(reference|solution|"
    r"answer)\b[^.\n]{0,60}?\b(score|grade|rubric|criteri|marks?)",
    r"\bskip the rubric\b",
    r"\b(as an ai|language model)\b[^.\n]{0,40}?\b(must|should|will)\b",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)
_JSON_BLOB = re.compile(
    r"\{[^{}]{0,2000}?[\"'](overall|score|overall_score|level|criteria|grade|verdict)[\"']"
    r"[^{}]{0,2000}?\}",
    re.IGNORECASE | re.DOTALL,
)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
# Sentence ends, and the edges of tags, so an injected tag or comment is removed on its own
# without taking the neighbouring (legitimate) sentence with it.
_CLAUSES = re.compile(r"(?<=[.!?\n])\s+|(?<=>)\s*|\s*(?=</?[a-zA-Z_]+[^<>]{0,80}>)")


@dataclass(frozen=True)
class Scrubbed:
    text: str  # the answer with grader-directed sentences removed
    removed: list[str]  # what was removed, verbatim

    @property
    def found(self) -> bool:
        return bool(self.removed)


def looks_like_injection(text: str) -> bool:
    return bool(_INJECTION.search(text) or _JSON_BLOB.search(text))


def scrub_injection(answer: str) -> Scrubbed:
    """The answer without JSON verdict blobs and sentences that address the grader."""
    removed = [m.group(0) for m in _HTML_COMMENT.finditer(answer) if _INJECTION.search(m.group(0))]
    text = _HTML_COMMENT.sub(lambda m: " " if _INJECTION.search(m.group(0)) else m.group(0), answer)
    removed += [m.group(0) for m in _JSON_BLOB.finditer(text)]
    text = _JSON_BLOB.sub(" ", text)
    kept: list[str] = []
    for piece in _CLAUSES.split(text):
        if _INJECTION.search(piece):
            removed.append(piece.strip())
        else:
            kept.append(piece)
    return Scrubbed(text=" ".join(kept).strip(), removed=[r for r in removed if r])
