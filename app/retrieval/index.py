"""The corpus in Chroma: one document per question, kept in step incrementally.

Each document is the question text plus its rubric key points (which restate the model
answer's substance), so both a paraphrased question and a candidate's answer land near it.
Each record carries a content hash; :meth:`QuestionIndex.sync` re-embeds only changed
questions and deletes questions that left the corpus.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings as ChromaSettings
from chromadb.utils.embedding_functions import register_embedding_function

from app.config import Settings
from app.corpus.models import Corpus, Question
from app.embeddings import MODEL_ID, content_hash, get_encoder
from app.errors import IndexUnavailableError, InterviewerError

INDEX_FORMAT = "3"  # bump when document_text or the metadata layout changes
# About 190 tokens: the question and its first key points. Longer documents cost embedding
# time on every cold build without changing what is retrieved (measured: same recall@3).
DOCUMENT_CHARS = 800
OPEN_LOCK_FILE = ".open.lock"  # in the embedded Chroma dir; see open_lock()


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma adapter for :class:`MiniLMEncoder`, registered so reopened collections find it."""

    def __init__(self) -> None:
        self._encoder = get_encoder()

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "senior-interviewer-minilm-int8"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction()

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_ID}


@contextmanager
def chroma_failures(where: str) -> Iterator[None]:
    """Chroma, its HTTP client and its SQLite files raise many kinds of errors; at this
    boundary each becomes an :class:`IndexUnavailableError` saying where. Errors of our own
    (a missing embedding model, say) pass through as they are."""
    try:
        yield
    except InterviewerError:
        raise
    except Exception as exc:
        raise IndexUnavailableError(
            f"the question index ({where}) failed: {type(exc).__name__}: {exc}"
        ) from exc


def location(settings: Settings) -> str:
    """Where the index lives, as the user configured it."""
    if settings.chroma_mode == "server":
        return f"{settings.chroma_host}:{settings.chroma_port}"
    return str(settings.chroma_path)


def open_client(settings: Settings) -> Any:
    """An embedded PersistentClient under the data dir, or an HttpClient to `chroma run`."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if settings.chroma_mode == "server":
        try:
            return chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
        except Exception as exc:  # chromadb raises plain ValueError/ConnectError here
            raise IndexUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} "
                f"({exc}). Start one with `chroma run --host 127.0.0.1 --port "
                f"{settings.chroma_port} --path DIR`, or set INTERVIEWER_CHROMA_MODE=embedded."
            ) from exc
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


@contextmanager
def open_lock(chroma_path: Path) -> Iterator[None]:
    """One process at a time opens an embedded Chroma dir: a new dir's schema migrations are
    not safe to run twice at once (the loser fails with "table collections already exists")."""
    chroma_path.mkdir(parents=True, exist_ok=True)
    with (chroma_path / OPEN_LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def document_text(question: Question) -> str:
    return "\n".join([question.question, *question.key_points])[:DOCUMENT_CHARS]


def record_hash(question: Question) -> str:
    """Changes when anything stored for the question changes: text, filters or model."""
    return content_hash(
        INDEX_FORMAT,
        MODEL_ID,
        document_text(question),
        question.topic,
        ",".join(sorted(question.roles)),
        str(question.difficulty),
        str(question.kind),
    )


def record_metadata(question: Question, parents: Sequence[str]) -> dict[str, Any]:
    return {
        "qid": question.id,
        "topic": question.topic,
        "roles": [str(role) for role in question.roles],
        "difficulty": question.difficulty,
        "kind": str(question.kind),
        "content_hash": record_hash(question),
        # Chroma merges metadata on update and rejects empty lists; None deletes the key.
        "parents": sorted(parents) or None,
    }


def parent_ids(corpus: Corpus) -> dict[str, list[str]]:
    """For each question, the questions that declare it as a follow-up."""
    parents: dict[str, list[str]] = {}
    for question in corpus.questions.values():
        for follow_up in question.follow_ups:
            if follow_up.ref is not None:
                parents.setdefault(follow_up.ref, []).append(question.id)
    return parents


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    deleted: int
    unchanged: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.updated} re-embedded, {self.deleted} deleted, "
            f"{self.unchanged} unchanged in {self.seconds:.2f} s"
        )


Progress = Callable[[int], None]


class QuestionIndex:
    """A Chroma collection of corpus questions with cosine distance."""

    def __init__(self, client: Any, name: str, where: str = "") -> None:
        self.client = client
        self.name = name
        self.where = where or name
        self.embedding_function = MiniLMEmbeddingFunction()
        self.collection = client.get_or_create_collection(
            name=name,
            embedding_function=self.embedding_function,
            configuration={"hnsw": {"space": "cosine"}},
        )

    @classmethod
    def open(cls, settings: Settings) -> QuestionIndex:
        """The collection, created if needed; :class:`IndexUnavailableError` if it cannot be."""
        where = location(settings)
        with chroma_failures(where):
            if settings.chroma_mode == "server":
                return cls(open_client(settings), settings.chroma_collection, where)
            with open_lock(settings.chroma_path):  # the client and the collection it creates
                return cls(open_client(settings), settings.chroma_collection, where)

    def count(self) -> int:
        return int(self.collection.count())

    def _stored(self) -> dict[str, Mapping[str, Any]]:
        with chroma_failures(self.where):
            stored = self.collection.get(include=["metadatas"])
        return dict(zip(stored["ids"], stored["metadatas"] or [], strict=True))

    def plan(
        self, corpus: Corpus, stored: Mapping[str, Mapping[str, Any]] | None = None
    ) -> tuple[list[str], list[str], list[str]]:
        """Ids to add, to re-embed and to delete so that the index matches ``corpus``."""
        stored = self._stored() if stored is None else stored
        to_add = [qid for qid in corpus.questions if qid not in stored]
        to_update = [
            qid
            for qid, question in corpus.questions.items()
            if qid in stored and stored[qid].get("content_hash") != record_hash(question)
        ]
        to_delete = [qid for qid in stored if qid not in corpus.questions]
        return to_add, to_update, to_delete

    def is_stale(self, corpus: Corpus) -> bool:
        return any(self.plan(corpus))

    def sync(self, corpus: Corpus, progress: Progress | None = None, batch: int = 64) -> SyncReport:
        """Bring the index in line with the corpus, embedding only what changed."""
        started = time.perf_counter()
        stored = self._stored()
        to_add, to_update, to_delete = self.plan(corpus, stored)
        parents = parent_ids(corpus)
        # Parent links can change without a question's own text changing.
        relink = [
            qid
            for qid, metadata in stored.items()
            if qid in corpus.questions
            and qid not in to_update
            and sorted(metadata.get("parents") or []) != sorted(parents.get(qid, []))
        ]
        with chroma_failures(self.where):
            if to_delete:
                self.collection.delete(ids=to_delete)
            pending = to_add + to_update
            encoder = get_encoder()
            for start in range(0, len(pending), batch):
                chunk = [corpus.questions[qid] for qid in pending[start : start + batch]]
                documents = [document_text(q) for q in chunk]
                self.collection.upsert(
                    ids=[q.id for q in chunk],
                    documents=documents,
                    embeddings=list(encoder.encode(documents)),
                    metadatas=[record_metadata(q, parents.get(q.id, [])) for q in chunk],
                )
                if progress is not None:
                    progress(len(chunk))
            if relink:
                self.collection.update(
                    ids=relink,
                    metadatas=[
                        record_metadata(corpus.questions[qid], parents.get(qid, []))
                        for qid in relink
                    ],
                )
        return SyncReport(
            added=len(to_add),
            updated=len(to_update),
            deleted=len(to_delete),
            unchanged=len(corpus.questions) - len(to_add) - len(to_update),
            seconds=time.perf_counter() - started,
        )

    def query(
        self,
        vector: Sequence[float] | npt.NDArray[np.float32],
        n_results: int,
        where: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        """(question id, cosine similarity) pairs, best first."""
        if n_results <= 0:
            return []
        result = self.collection.query(
            query_embeddings=[list(map(float, vector))],
            n_results=n_results,
            where=dict(where) if where else None,
            include=["distances"],
        )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result["distances"] else []
        return [(qid, 1.0 - float(d)) for qid, d in zip(ids, distances, strict=True)]
