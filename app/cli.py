"""The ``interviewer`` command line (also ``python -m app``).

Each subcommand parses its flags here and calls into the module that does the work; heavy
imports (Chroma, litellm, onnxruntime) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, get_settings

if TYPE_CHECKING:
    from app.corpus import Corpus

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
    if not args.no_run and _corpus_code_check(corpus, corpus_dir) != 0:
        return 1
    print(
        f"\ncorpus OK: {cov.total} questions in {len(corpus.topics)} topics "
        f"(version {corpus.version})"
    )
    return 0


def _corpus_code_check(corpus: Corpus, corpus_dir: Path) -> int:
    """Run model-answer code blocks and coding questions in the sandbox (app.corpus.verify)."""
    import asyncio
    import os

    from app.corpus.verify import verify_code

    check = asyncio.run(verify_code(corpus, corpus_dir))
    for issue in check.issues:
        print(issue, file=sys.stderr)
    print(f"\n{check.summary()}")
    if check.unavailable is not None:
        if os.environ.get("CI"):
            print("code checks must run in CI; install bubblewrap", file=sys.stderr)
            return 1
        print("warning: code blocks and coding questions were not checked", file=sys.stderr)
        return 0
    if check.issues:
        print(f"corpus check failed: {len(check.issues)} code problem(s)", file=sys.stderr)
        return 1
    return 0


def _code_run(args: argparse.Namespace, settings: Settings) -> int:
    """``interviewer code run``: the same sandboxed test run the app uses (testrun)."""
    import asyncio
    import json

    from app.corpus import CorpusError, load_corpus
    from app.sandbox.testrun import TestRunStatus, run_coding_tests

    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        code = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        print(f"error: {path} is not UTF-8 text (byte {exc.start} is invalid)", file=sys.stderr)
        return 2
    try:
        corpus = load_corpus(settings.corpus_dir)
    except CorpusError as exc:
        print(
            f"error: the corpus has {len(exc.issues)} problem(s); run `interviewer corpus check`",
            file=sys.stderr,
        )
        return 2
    question = corpus.questions.get(args.question_id)
    if question is None:
        print(f"error: no question with id {args.question_id!r}", file=sys.stderr)
        return 2
    if question.coding is None:
        print(
            f"error: {question.id!r} is not a coding question (kind: {question.kind.value})",
            file=sys.stderr,
        )
        return 2
    report = asyncio.run(run_coding_tests(question.coding, code, visible=args.visible))
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        which = "visible" if args.visible else "hidden"
        print(
            f"{question.id}: {which} tests {report.status.value}, {report.passed}/{report.total}"
            f" (correctness {report.correctness:.2f}) in {report.duration_s:.2f} s"
        )
        for test in report.tests:
            mark = "PASS" if test.passed else "FAIL"
            message = f": {test.message}" if test.message and not test.passed else ""
            print(f"  {mark} {test.name}{message}")
        if report.reason and report.status != TestRunStatus.PASSED:
            print(f"reason: {report.reason}")
    return 0 if report.status == TestRunStatus.PASSED else 1


def _build_index(settings: Settings, rebuild: bool, quiet: bool) -> int:
    """Sync the question index with the corpus, with a progress bar; returns #questions."""
    from tqdm import tqdm

    from app.corpus import load_corpus
    from app.retrieval.index import QuestionIndex

    corpus = load_corpus(settings.corpus_dir)
    index = QuestionIndex.open(settings)
    if rebuild:
        index.client.delete_collection(settings.chroma_collection)
        index = QuestionIndex.open(settings)
    to_add, to_update, _to_delete = index.plan(corpus)
    with tqdm(
        total=len(to_add) + len(to_update),
        unit="q",
        desc="indexing questions",
        disable=quiet or not (to_add or to_update),
    ) as bar:
        report = index.sync(corpus, progress=bar.update)
    where = (
        f"{settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_mode == "server"
        else str(settings.chroma_path)
    )
    print(f"index {settings.chroma_collection!r} at {where}: {report}; {index.count()} questions")
    return index.count()


def _index(args: argparse.Namespace, settings: Settings) -> int:
    from app.corpus import load_corpus
    from app.services import warm_rubric_vectors

    _build_index(settings, args.rebuild, args.quiet)
    if settings.warm_vectors:  # what the app would otherwise embed in the background
        new = warm_rubric_vectors(settings, load_corpus(settings.corpus_dir))
        print(f"rubric vectors ready ({new} newly embedded)")
    return 0


def _prepare_app(settings: Settings, server_up: Callable[[], bool]) -> None:
    """Import the app's modules and build the shared foundation once the server is up.

    Waiting matters: this is pure Python and would compete for the GIL with the server's
    own start-up, delaying both; the import happens here, not at the top, for the same reason.
    """
    deadline = time.monotonic() + 30
    while not server_up() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        import app.ui.main  # noqa: F401  (the first page's imports, done ahead of it)
        from app.services import shared_foundation

        shared_foundation(settings)
    except Exception as exc:  # the page builds it again and shows the error where it is seen
        print(f"warning: preparing the app failed: {exc}", file=sys.stderr)


def _app(args: argparse.Namespace, settings: Settings) -> int:
    """Streamlit in this process: the corpus, index and app modules load in a background
    thread while the web server starts, so the first page finds them ready."""
    import urllib.request

    from streamlit.web import cli as streamlit_cli

    from app.config import PACKAGE_DIR

    if settings.chroma_mode == "embedded" and not settings.chroma_path.exists():
        from app.corpus import CorpusError
        from app.retrieval.index import IndexUnavailableError

        try:  # the first run: embed the corpus here, with a progress bar in the terminal
            _build_index(settings, rebuild=False, quiet=False)
        except (CorpusError, IndexUnavailableError) as exc:
            print(f"warning: {exc}\nThe app will show this problem too.", file=sys.stderr)

    url = f"http://{args.address}:{args.port}"

    def server_up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                return True
        except OSError:
            return False

    threading.Thread(
        target=_prepare_app, args=(settings, server_up), name="prepare-app", daemon=True
    ).start()
    script = PACKAGE_DIR / "ui" / "streamlit_app.py"
    sys.argv = [
        "streamlit",
        "run",
        str(script),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]
    print(f"Starting the interviewer on {url}", flush=True)
    try:
        streamlit_cli.main()  # a click command: it exits when the server stops
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return 0


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from app.chat import run_chat
    from app.corpus.models import Role
    from app.interview.engine import EngineError, InterviewSetup, Mode
    from app.retrieval.selector import SelectionError
    from app.services import build_engine, build_foundation

    if isinstance(sys.stdin, io.TextIOWrapper):  # a stray byte must not end the interview
        sys.stdin.reconfigure(errors="replace")
    foundation = build_foundation(settings)
    engine = build_engine(foundation, model=args.model)
    try:
        setup = None
        if not args.resume:
            setup = InterviewSetup(
                role=Role(args.role),
                topics=args.topics or list(foundation.corpus.topics),
                difficulty=args.difficulty,
                length=args.length,
                mode=Mode(args.mode),
                seed=args.seed,
            )
        run_chat(engine, setup, resume=args.resume)
    except (SelectionError, EngineError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    check.add_argument(
        "--no-run",
        action="store_true",
        help="do not run model-answer code blocks or coding questions (they run in the sandbox)",
    )
    check.set_defaults(handler=_corpus_check)

    code = commands.add_parser("code", help="run code against a coding question's tests")
    code_commands = code.add_subparsers(dest="code_command", required=True, metavar="ACTION")
    code_run = code_commands.add_parser(
        "run",
        help="run a solution file against a question's hidden (or visible) tests in the sandbox",
        description="Exit status: 0 when every test passed, 1 otherwise, 2 for bad input.",
    )
    code_run.add_argument("question_id", metavar="QUESTION_ID")
    code_run.add_argument("file", metavar="FILE", help="the solution (saved as solution.py)")
    code_run.add_argument("--visible", action="store_true", help="the visible tests instead")
    code_run.add_argument("--json", action="store_true", help="print the report as JSON")
    code_run.set_defaults(handler=_code_run)

    index = commands.add_parser("index", help="embed the corpus into Chroma (incremental)")
    index.add_argument("--rebuild", action="store_true", help="drop the collection first")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(handler=_index)

    app = commands.add_parser("app", help="launch the Streamlit app on 127.0.0.1")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--address", default="127.0.0.1")
    app.set_defaults(handler=_app)

    from app.corpus.models import Role

    chat = commands.add_parser("chat", help="run an interview in the terminal")
    chat.add_argument("--role", default="backend", choices=[r.value for r in Role])
    chat.add_argument("--topics", nargs="+", help="topic ids (default: all for the role)")
    chat.add_argument("--difficulty", type=int, default=3, choices=range(1, 6))
    chat.add_argument("--length", type=int, default=5, choices=range(3, 16))
    chat.add_argument("--mode", default="practice", choices=["practice", "mock"])
    chat.add_argument("--model", default=None, help="litellm model string (default: settings)")
    chat.add_argument("--seed", type=int, default=None)
    chat.add_argument("--resume", metavar="SESSION_ID", help="continue an unfinished session")
    chat.set_defaults(handler=_chat)

    from app.evals.cli import add_eval_commands

    add_eval_commands(commands)
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
