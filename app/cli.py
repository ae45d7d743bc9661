"""The ``interviewer`` command line (also ``python -m app``).

Each subcommand parses its flags here and calls into the module that does the work; heavy
imports (Chroma, litellm, onnxruntime) happen inside the handlers so ``--help`` stays fast.
A problem the user can act on (:class:`app.errors.InterviewerError`) ends the command with
one line on stderr; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, get_settings
from app.errors import InterviewerError

if TYPE_CHECKING:
    from app.corpus import Corpus

Handler = Callable[[argparse.Namespace, Settings], int]
PACKS_ENV = "INTERVIEWER_CORPUS_PACKS"


def _corpus_check(args: argparse.Namespace, settings: Settings) -> int:
    """The built-in corpus (plus any configured packs), or with PATH one pack on its own."""
    from app.corpus import read_corpus
    from app.corpus.coverage import coverage, render_table

    corpus_dir = Path(args.corpus_dir) if args.corpus_dir else settings.corpus_dir
    pack = Path(args.path) if args.path else None
    if pack is not None and pack.resolve() == corpus_dir.resolve():
        pack = None  # the built-in folder named as PATH: check it as the built-in corpus
        packs: list[Path] = []
    else:
        packs = [pack] if pack is not None else list(settings.corpus_packs)
    report = read_corpus(corpus_dir, packs)
    if report.corpus is None or report.issues:
        for issue in report.issues:
            print(issue, file=sys.stderr)
        print(f"corpus check failed: {len(report.issues)} problem(s)", file=sys.stderr)
        return 1
    corpus = report.corpus
    if pack is not None:  # a pack alone: its coverage is information, never a failure
        part = report.part(pack)
        cov = coverage(part, article_examples=False)
        print(render_table(part, cov, article_examples=False))
        for shortfall in cov.shortfalls:
            print(f"coverage (information, not required of a pack): {shortfall}")
        if not args.no_run and _corpus_code_check(part, [pack]) != 0:
            return 1
        print(
            f"\npack OK: {cov.total} questions in {len(part.topics)} topics ({pack}; "
            f"checked against the built-in corpus, version {corpus.version})"
        )
        return 0
    cov = coverage(corpus)
    print(render_table(corpus, cov))
    # The minimums bind the built-in corpus; what the packs' own topics lack is information.
    builtin = coverage(report.part(None)) if packs else cov
    for shortfall in cov.shortfalls:
        if shortfall not in builtin.shortfalls:
            print(f"coverage (information, not required of a pack): {shortfall}")
    if builtin.shortfalls and not args.allow_low_coverage:
        for shortfall in builtin.shortfalls:
            print(f"coverage: {shortfall}", file=sys.stderr)
        return 1
    with_packs = f"; {len(corpus.packs)} pack(s): {', '.join(corpus.packs)}" if packs else ""
    if not args.no_run and _corpus_code_check(corpus, [corpus_dir, *packs]) != 0:
        return 1
    print(
        f"\ncorpus OK: {cov.total} questions in {len(corpus.topics)} topics "
        f"(version {corpus.version}{with_packs})"
    )
    return 0


def _corpus_new(args: argparse.Namespace, settings: Settings) -> int:
    from app.corpus.loader import _load_topics
    from app.corpus.template import TemplateError, write_template

    topics_file, _ = _load_topics(settings.corpus_dir)
    builtin = {t.id for t in topics_file.topics} if topics_file else set()
    folder = Path(args.dir)
    try:
        written, note = write_template(args.topic, folder, builtin)
    except (TemplateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    if note:
        print(f"note: {note}")
    print(f"Replace every text starting with TODO, then run: interviewer corpus check {folder}")
    return 0


def _corpus_code_check(corpus: Corpus, folders: list[Path]) -> int:
    """Run model-answer code blocks and coding questions in the sandbox (app.corpus.verify)."""
    import asyncio
    import os

    from app.corpus.verify import verify_code

    check = asyncio.run(verify_code(corpus, folders))
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

    from app.corpus import load_corpus
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
    corpus = load_corpus(settings.corpus_dir, settings.corpus_packs)
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


def _build_index(
    settings: Settings, rebuild: bool, quiet: bool, corpus: Corpus | None = None
) -> int:
    """Sync the question index with the corpus (built-in plus packs), with a progress bar;
    returns #questions."""
    from tqdm import tqdm

    from app.corpus import load_corpus
    from app.retrieval.index import QuestionIndex, location

    if corpus is None:
        corpus = load_corpus(settings.corpus_dir, settings.corpus_packs)
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
    where = location(settings)
    print(f"index {settings.chroma_collection!r} at {where}: {report}; {index.count()} questions")
    return index.count()


def _index(args: argparse.Namespace, settings: Settings) -> int:
    from app.corpus import load_corpus
    from app.services import warm_rubric_vectors

    corpus = load_corpus(settings.corpus_dir, settings.corpus_packs)
    _build_index(settings, args.rebuild, args.quiet, corpus)
    if settings.warm_vectors:  # what the app would otherwise embed in the background
        new = warm_rubric_vectors(settings, corpus)
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
    except InterviewerError as exc:  # the page builds it again and shows it where it is seen
        print(f"warning: preparing the app failed: {exc}", file=sys.stderr)


def _export_packs(settings: Settings) -> Settings:
    """The pages read :func:`get_settings`, so ``--pack`` folders reach them through the
    environment (Streamlit runs in this process); returns the settings they will see."""
    if settings.corpus_packs == get_settings().corpus_packs:
        return settings
    os.environ[PACKS_ENV] = json.dumps([str(path) for path in settings.corpus_packs])
    get_settings.cache_clear()
    return get_settings()


def _app(args: argparse.Namespace, settings: Settings) -> int:
    """Streamlit in this process: the corpus, index and app modules load in a background
    thread while the web server starts, so the first page finds them ready."""
    import urllib.request

    from streamlit.web import cli as streamlit_cli

    from app.config import PACKAGE_DIR

    settings = _export_packs(settings)

    if settings.chroma_mode == "embedded" and not settings.chroma_path.exists():
        try:  # the first run: embed the corpus here, with a progress bar in the terminal
            _build_index(settings, rebuild=False, quiet=False)
        except InterviewerError as exc:
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
    from app.interview.engine import InterviewSetup, Mode
    from app.services import build_engine, build_foundation, topics_for_role

    if isinstance(sys.stdin, io.TextIOWrapper):  # a stray byte must not end the interview
        sys.stdin.reconfigure(errors="replace")
    foundation = build_foundation(settings)
    engine = build_engine(foundation, model=args.model)
    setup = None
    if not args.resume:
        setup = InterviewSetup(
            role=Role(args.role),
            topics=args.topics or [t for t, _ in topics_for_role(foundation, args.role)],
            difficulty=args.difficulty,
            length=args.length,
            mode=Mode(args.mode),
            seed=args.seed,
        )
    run_chat(engine, setup, resume=args.resume)
    return 0


PACK_HELP = (
    "a question pack: an extra corpus folder, loaded after the built-in corpus and any in "
    f"{PACKS_ENV} (repeatable)"
)


def _add_pack_flag(parser: argparse.ArgumentParser, dest: str = "packs") -> None:
    parser.add_argument(
        "--pack", action="append", dest=dest, default=None, metavar="DIR", help=PACK_HELP
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interviewer",
        description="Practice interviewer for senior Python engineers (offline by default).",
    )
    # Before the command (`interviewer --pack DIR chat`) or after it (`chat --pack DIR`).
    _add_pack_flag(parser, dest="global_packs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpus = commands.add_parser("corpus", help="work with the question corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    check = corpus_commands.add_parser(
        "check",
        help="validate every corpus file (or one question pack: PATH); print coverage",
        description="Validate the built-in corpus and any configured packs; with PATH, "
        "validate that folder as a question pack against the built-in corpus alone (other "
        "packs are not loaded, and the pack's coverage is information, not a requirement).",
    )
    check.add_argument("path", nargs="?", metavar="PATH", help="a question pack folder")
    check.add_argument("--corpus-dir", help="corpus folder (default: the configured corpus)")
    check.add_argument(
        "--allow-low-coverage",
        action="store_true",
        help="do not fail when the coverage minimums are not met (for small custom corpora)",
    )
    _add_pack_flag(check)
    check.add_argument(
        "--no-run",
        action="store_true",
        help="do not run model-answer code blocks or coding questions (they run in the sandbox)",
    )
    check.set_defaults(handler=_corpus_check)
    new = corpus_commands.add_parser(
        "new",
        help="write a commented template for a topic file (DIR/TOPIC.yaml)",
        description="Write DIR/TOPIC.yaml: a commented topic file with one complete example "
        "question whose TODO texts you replace (and DIR/topics.yaml for a new topic). "
        "An existing file is never overwritten.",
    )
    new.add_argument("topic", metavar="TOPIC", help="topic id, e.g. asyncio or team_billing")
    new.add_argument("--dir", default=".", help="folder to write into (default: current)")
    new.set_defaults(handler=_corpus_new)

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
    _add_pack_flag(index)
    index.set_defaults(handler=_index)

    app = commands.add_parser("app", help="launch the Streamlit app on 127.0.0.1")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--address", default="127.0.0.1")
    _add_pack_flag(app)
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
    _add_pack_flag(chat)
    chat.set_defaults(handler=_chat)

    from app.evals.cli import add_eval_commands

    add_eval_commands(commands)
    _add_pack_flag(commands.choices["eval"])
    return parser


def with_packs(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with the ``--pack`` folders added after the configured ones."""
    given = [*(args.global_packs or []), *(getattr(args, "packs", None) or [])]
    if not given:
        return settings
    packs = list(dict.fromkeys([*settings.corpus_packs, *(Path(p).expanduser() for p in given)]))
    return settings.model_copy(update={"corpus_packs": packs})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, with_packs(get_settings(), args))
    except InterviewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
