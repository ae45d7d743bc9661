"""Shared fixtures: real corpus, real embeddings, real Chroma, real SQLite, a real HTTP server.

Expensive things (the Chroma index of the whole corpus) are built once per session in a
session temp folder; everything a test writes goes to its own ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import app  # noqa: F401  (sets the offline environment before anything else loads)
from app.config import REPO_DIR, Settings
from app.corpus import Corpus, load_corpus
from app.retrieval.index import QuestionIndex
from app.services import Foundation, build_engine, build_foundation
from app.store import Store
from tests.support import local
from tests.support.openai_server import OpenAIStubServer, RecordedRequest, Reply

ARTIFACTS = REPO_DIR / "test-artifacts"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "corpus_dir": REPO_DIR / "corpus",
        "prompts_dir": REPO_DIR / "prompts",
        "llm_model": "",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return load_corpus(REPO_DIR / "corpus")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per session holding the embedded index (built once)."""
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="session")
def shared_settings(shared_data_dir: Path) -> Settings:
    return make_settings(shared_data_dir)


@pytest.fixture(scope="session")
def index(shared_settings: Settings, corpus: Corpus) -> QuestionIndex:
    built = QuestionIndex.open(shared_settings)
    built.sync(corpus)
    return built


@pytest.fixture(scope="session")
def foundation(shared_settings: Settings, index: QuestionIndex) -> Foundation:
    return build_foundation(shared_settings, warm_vectors=False)


@pytest.fixture
def settings(tmp_path: Path, shared_data_dir: Path, index: QuestionIndex) -> Settings:
    """Per-test settings: own database, the session's index (built before it is linked)."""
    own = tmp_path / "data"
    own.mkdir()
    (own / "chroma").symlink_to(shared_data_dir / "chroma", target_is_directory=True)
    return make_settings(own)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "interviews.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def offline_engine(foundation: Foundation, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An offline engine over the session index with a database of its own."""
    own = Foundation(**{**foundation.__dict__, "store": Store(tmp_path / "engine.sqlite3")})
    engine = build_engine(own, model="")
    yield engine
    own.store.close()


@pytest.fixture
def openai_server() -> Iterator[OpenAIStubServer]:
    with OpenAIStubServer() as server:
        yield server


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real `chroma run` on 127.0.0.1 for the server-mode tests."""
    try:
        with local.chroma_server(tmp_path_factory.mktemp("chroma-server")) as address:
            yield address
    except local.LocalServerError as exc:
        pytest.fail(str(exc))


def echoing_401(request: RecordedRequest) -> Reply:
    """What a provider says to a wrong key: the key it was sent, echoed back."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    message = f"Incorrect API key provided: {key}. You can find your API key at ..."
    return Reply(status=401, body=json.dumps({"error": {"message": message, "type": "auth"}}))


def write_json_lines(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


_OPEN_RACE_SCRIPT = """
import sys
from pathlib import Path
import app
{imports}
print("ready", flush=True)
for line in sys.stdin:
    data_dir = Path(line.strip())
    try:
        {opener}
        print("ok", flush=True)
    except Exception as exc:
        print("error", type(exc).__name__, str(exc).replace("\\n", " "), flush=True)
"""


def first_open_race(tmp_path: Path, imports: str, opener: str, rounds: int) -> list[str]:
    """Two processes open the same fresh data dir at the same moment, ``rounds`` times.

    Each process imports first and then waits for a go line naming the directory, so the
    opens themselves start together. Returns every error line either process reported.
    """
    script = tmp_path / "open_race.py"
    script.write_text(_OPEN_RACE_SCRIPT.format(imports=imports, opener=opener))
    processes = [
        subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors: list[str] = []
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for number in range(rounds):
            data_dir = tmp_path / f"fresh-{number}"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{data_dir}\n")
                process.stdin.flush()
            for process in processes:
                assert process.stdout is not None
                line = process.stdout.readline().strip()
                if line != "ok":
                    errors.append(f"round {number}: {line}")
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=60)
    return errors
