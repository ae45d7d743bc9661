"""Untrusted text for ``st.markdown`` and friends, made unable to load or link anything.

Text from a model (coaching, misconceptions, streamed feedback, missed points), from a
server (error messages) or from the candidate reaches the page as Markdown. A Markdown image
(``![](http://host/x.png)``) would make the browser fetch it, so every such text goes
through one of these two functions. Raw HTML is never rendered either: no element is
drawn with ``unsafe_allow_html``.
"""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~:$<&])")
_IMAGE = re.compile(r"!\[")
# Code keeps its characters: a fenced block (to its closing fence or the end), an indented
# line, or an inline code span (a run of backticks closed by a run of the same length).
_CODE = re.compile(
    r"^ {0,3}(?P<fence>`{3,}|~{3,})[^\n]*(?:\n.*?^ {0,3}(?P=fence)[^\n]*$|.*\Z)"
    r"|^(?: {4}|\t)[^\n]*$"
    r"|(?<!`)(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)",
    re.DOTALL | re.MULTILINE,
)
# A link or image opener ("[") or an HTML tag or autolink ("<") not already escaped.
_OPENER = re.compile(r"(?<!\\)((?:\\\\)*)([\[<])")


def as_text(text: str, *, one_line: bool = False) -> str:
    """Shown as exactly these characters: every Markdown and HTML special character is
    escaped, so nothing becomes an image, a link, markup or formatting. ``one_line`` folds
    whitespace, for text inside a list item or a highlight."""
    if one_line:
        text = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def safe_markdown(text: str) -> str:
    """Markdown that keeps its formatting and code blocks (an answer, or the interviewer's
    words around a corpus question) but cannot load or link anything: outside code, link
    brackets and tags are escaped; images are escaped everywhere, code included, so a span
    this function took for code cannot smuggle one through."""
    parts: list[str] = []
    last = 0
    for code in _CODE.finditer(text):
        parts += [_OPENER.sub(r"\1\\\2", text[last : code.start()]), code.group(0)]
        last = code.end()
    parts.append(_OPENER.sub(r"\1\\\2", text[last:]))
    return _IMAGE.sub(r"!\\[", "".join(parts))
