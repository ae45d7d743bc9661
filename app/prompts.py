"""Prompt templates, kept as files in ``prompts/`` and versioned.

A prompt file starts with a header of ``key: value`` lines (at least ``version``), then
sections introduced by ``## <name>`` lines. Placeholders are ``$name`` (string.Template), so
JSON braces in a prompt need no escaping. The version is recorded in every evaluation.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.errors import ConfigError

_SECTION = re.compile(r"^## (?P<name>[a-z_]+)\s*$", re.MULTILINE)


class PromptError(ConfigError):
    """A prompt file is missing, malformed, or a placeholder has no value."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    sections: dict[str, str]
    path: Path

    def render(self, section: str, **values: object) -> str:
        try:
            template = string.Template(self.sections[section])
        except KeyError:
            raise PromptError(f"{self.path}: no section '## {section}'") from None
        try:
            return template.substitute({k: str(v) for k, v in values.items()})
        except KeyError as exc:
            raise PromptError(f"{self.path}: no value for placeholder ${exc.args[0]}") from None

    def section(self, name: str) -> str:
        return self.render(name)


@lru_cache(maxsize=64)
def load_prompt(prompts_dir: Path, name: str) -> Prompt:
    path = prompts_dir / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read prompt {path}: {exc}") from exc
    first = _SECTION.search(text)
    if first is None:
        raise PromptError(f"{path}: no '## <section>' found")
    header: dict[str, str] = {}
    for line in text[: first.start()].splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    if "version" not in header:
        raise PromptError(f"{path}: the header needs a 'version:' line")
    matches = list(_SECTION.finditer(text))
    sections = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        sections[match.group("name")] = text[match.end() : end].strip("\n")
    return Prompt(name=name, version=f"{name}@{header['version']}", sections=sections, path=path)
