"""The ``interviewer`` command line (also ``python -m app``).

Each subcommand parses its flags here and calls into the module that does the work; heavy
imports (Chroma, litellm, onnxruntime) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.config import Settings, get_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _corpus_check(args: argparse.Namespace, settings: Settings) -> int:
    from app.corpus import check_corpus
    from app.corpus.coverage import coverage, render_table

    corpus_dir = Path(args.corpus_dir) if args.corpus_dir else settings.corpus_dir
    corpus, issues = check_corpus(corpus_dir)
    if corpus is None:
        for issue in issues:
            print(issue, file=sys.stderr)
        print(f"corpus check failed: {len(issues)} problem(s)", file=sys.stderr)
        return 1
    cov = coverage(corpus)
    print(render_table(corpus, cov))
    if cov.shortfalls and not args.allow_low_coverage:
        for shortfall in cov.shortfalls:
            print(f"coverage: {shortfall}", file=sys.stderr)
        return 1
    print(
        f"\ncorpus OK: {cov.total} questions in {len(corpus.topics)} topics "
        f"(version {corpus.version})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interviewer",
        description="Practice interviewer for senior Python engineers (offline by default).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpus = commands.add_parser("corpus", help="work with the question corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    check = corpus_commands.add_parser("check", help="validate every corpus file; print coverage")
    check.add_argument("--corpus-dir", help="corpus folder (default: the configured corpus)")
    check.add_argument(
        "--allow-low-coverage",
        action="store_true",
        help="do not fail when the coverage minimums are not met (for small custom corpora)",
    )
    check.set_defaults(handler=_corpus_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, get_settings())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
