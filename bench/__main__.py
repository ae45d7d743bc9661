"""Benchmarks: ``python -m bench`` (or ``make bench``) prints one table per area.

    python -m bench                 # everything (about 10 minutes on 2 cores)
    python -m bench --only grading  # one section: embeddings, index, selection, grading,
                                    # llm, turn, app, speech, sandbox
    python -m bench --quick         # skip the 100,000-question size sweep

Every section runs on real components (onnxruntime, Chroma embedded and `chroma run`,
SQLite, a local OpenAI-compatible HTTP server, Streamlit in headless Chromium, Whisper) in a
throwaway data folder. Results are also written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Table
from bench.sections import SECTIONS


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="sections to run")
    parser.add_argument("--quick", action="store_true", help="skip the 100k size sweep")
    args = parser.parse_args()
    chosen = args.only or list(SECTIONS)
    results: dict[str, list[dict[str, object]]] = {}
    started = time.perf_counter()
    for name in chosen:
        run: Callable[[bool], Table] = SECTIONS[name]
        print(f"\n== {name} ==", flush=True)
        table = run(args.quick)
        print(table.render(), flush=True)
        results[name] = table.rows
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {"seconds": round(time.perf_counter() - started, 1), "results": results}, indent=2
        )
        + "\n"
    )
    print(f"\nwritten to {out / 'latest.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
