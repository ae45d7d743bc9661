"""Plain-text helpers shared by grading, rubric derivation and retrieval.

Deliberately small and rule-based: sentence splitting that survives Python prose
(``asyncio.gather``, ``3.11``, ``e.g.``), content words with a light stemmer, and the
negation cues the offline grader needs.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "cf.", "resp.", "a.k.a.")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'`(\[]?[A-Z0-9_])")
_LINE_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_TOKEN = re.compile(r"[a-z0-9_]+(?:'[a-z]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from into onto over under
    as is are was were be been being am do does did doing have has had having it its it's this
    that these those there here which who whom whose what when where why how i you he she we
    they me him her us them my your his our their mine yours so such than too very can could
    would should may might must shall will just also only about up down out off again further
    once all any both each few more most other some same own s t don now use used using uses
    like get gets got one two thing things way ways make makes made really basically actually
    um uh er erm okay ok yeah yes well kind sort right mean gonna wanna lot lots stuff""".split()
)

NEGATIONS = frozenset(
    """not no never none nothing neither nor cannot can't won't don't doesn't didn't isn't
    aren't wasn't weren't shouldn't wouldn't couldn't mustn't hasn't haven't hadn't without
    nobody nowhere""".split()
)

_SUFFIXES = (
    "ational",
    "ization",
    "fulness",
    "ousness",
    "iveness",
    "ations",
    "ation",
    "ements",
    "ement",
    "ments",
    "ment",
    "ings",
    "ing",
    "edly",
    "ness",
    "ities",
    "ity",
    "ies",
    "ied",
    "ers",
    "er",
    "ed",
    "es",
    "ly",
    "s",
)


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (from a JSON "\\ud800" escape, say) replaced by U+FFFD:
    no UTF-8 encoder takes them, so they would fail hashing, SQLite and the tokenizer."""
    return _SURROGATE.sub("\ufffd", text)


def normalize(text: str) -> str:
    """NFKC, unified quotes, collapsed whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
    text = text.replace("\u201d", '"')
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def strip_code_blocks(text: str) -> tuple[str, list[str]]:
    """Prose without fenced code blocks, and the blocks themselves."""
    blocks = _FENCE.findall(text)
    return _FENCE.sub(" ", text), blocks


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Sentences (and bullet items) of ``text``; long run-ons are cut at commas or words."""
    # Whitespace only: sentences stay verbatim pieces of the text, so they can be quoted.
    protected = re.sub(r"[ \t\r\f\v]+", " ", text.replace("\r\n", "\n")).strip()
    for abbreviation in _ABBREVIATIONS:
        protected = protected.replace(abbreviation, abbreviation.replace(".", "\x00"))
    sentences: list[str] = []
    for block in _LINE_BREAK.split(protected):
        block = _BULLET.sub("", block.replace("\n", " ")).strip()
        for piece in _SENTENCE_END.split(block):
            piece = piece.replace("\x00", ".").strip()
            if piece:
                sentences.extend(_cut(piece, max_chars))
    return sentences


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    current = ""
    for clause in re.split(r"(?<=[,;:])\s+", sentence):
        while len(clause) > max_chars:  # a comma-less run-on: cut at a word boundary
            cut = clause.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            if current:
                parts.append(current)
                current = ""
            parts.append(clause[:cut])
            clause = clause[cut:].strip()
        if current and len(current) + len(clause) + 1 > max_chars:
            parts.append(current)
            current = clause
        else:
            current = f"{current} {clause}".strip()
    if current:
        parts.append(current)
    return parts


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; dotted names split (``asyncio.Semaphore`` -> two tokens)."""
    return _TOKEN.findall(normalize(text).lower().replace("n't", " not"))


@lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    """A light suffix-stripping stemmer: enough to match "retries"/"retry", "cancelled"/"cancel"."""
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            root = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                root += "y"
            if len(root) > 3 and root[-1] == root[-2] and root[-1] not in "lsz":
                root = root[:-1]  # "cancelled" -> "cancel", "stopped" -> "stop"
            return root
    return word


def content_words(text: str) -> list[str]:
    """Stemmed tokens that carry meaning (no stop words, no lone digits)."""
    return [stem(t) for t in tokens(text) if t not in STOPWORDS and not t.isdigit() and len(t) > 1]


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))
