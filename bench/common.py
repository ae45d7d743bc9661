"""Small shared helpers for the benchmarks: a table, percentiles, a scratch data folder."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import app  # noqa: F401  (offline environment first)
from app.config import REPO_DIR, Settings


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, **values: object) -> None:
        self.rows.append(values)

    def render(self) -> str:
        def cell(value: object) -> str:
            if isinstance(value, float):
                return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
            return str(value)

        body = [[cell(row.get(c, "")) for c in self.columns] for row in self.rows]
        widths = [
            max(len(c), *(len(r[i]) for r in body)) if body else len(c)
            for i, c in enumerate(self.columns)
        ]
        line = (
            "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)) + " |"
        )
        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        rows = [
            "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
            for r in body
        ]
        return "\n".join([line, rule, *rows])


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


@contextmanager
def scratch_settings(**overrides: object) -> Iterator[Settings]:
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        yield Settings(
            data_dir=folder,
            corpus_dir=REPO_DIR / "corpus",
            prompts_dir=REPO_DIR / "prompts",
            llm_model="",
            **overrides,  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
