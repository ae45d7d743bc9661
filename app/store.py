"""Interview history in SQLite: sessions and turns, written as they happen.

Every write is one transaction committed before the caller moves on, in WAL mode with
``synchronous=FULL``: a process killed at any point keeps every answer it had accepted.
The schema is versioned with ``PRAGMA user_version`` and upgraded by the ordered
:data:`MIGRATIONS` on open, so databases from older releases keep working.

Nothing secret is stored: sessions keep the model string, never an API key.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.errors import SessionNotFoundError, StoreError
from app.grading.models import Evaluation

TurnStatus = Literal["asked", "answered", "graded", "skipped"]
SessionStatus = Literal["active", "finished"]

MIGRATIONS: list[str] = [
    # 1: the first release.
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        role TEXT NOT NULL,
        topics TEXT NOT NULL,
        difficulty INTEGER NOT NULL,
        length INTEGER NOT NULL,
        mode TEXT NOT NULL,
        seed INTEGER NOT NULL,
        grader TEXT NOT NULL,
        model TEXT,
        status TEXT NOT NULL DEFAULT 'active',
        finished_at REAL
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        parent_id TEXT,
        topic TEXT NOT NULL,
        difficulty INTEGER NOT NULL,
        question_text TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        follow_up INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'asked',
        answer_text TEXT,
        transcript TEXT,
        audio_seconds REAL,
        evaluation TEXT,
        score REAL,
        hints INTEGER NOT NULL DEFAULT 0,
        asked_at REAL NOT NULL,
        answered_at REAL,
        graded_at REAL,
        grading_ms REAL,
        UNIQUE (session_id, position)
    );
    """,
    # 2: an audit trail of what the candidate asked for (hints, repeats, skips), and the
    # hint texts shown, so a resumed session shows the same conversation.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        turn_position INTEGER,
        kind TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX events_by_session ON events(session_id, id);
    CREATE INDEX sessions_by_time ON sessions(created_at);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write to finish
_BUSY_POLL_S = 0.02


class SessionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    created_at: float
    updated_at: float
    role: str
    topics: list[str]
    difficulty: int
    length: int
    mode: str
    seed: int
    grader: str
    model: str | None
    status: SessionStatus
    finished_at: float | None


class TurnRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    position: int
    item_id: str
    parent_id: str | None
    topic: str
    difficulty: int
    question_text: str
    reason: str
    follow_up: bool
    status: TurnStatus
    answer_text: str | None
    transcript: str | None
    audio_seconds: float | None
    evaluation: Evaluation | None
    score: float | None
    hints: int
    asked_at: float
    answered_at: float | None
    graded_at: float | None
    grading_ms: float | None


class EventRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    turn_position: int | None
    kind: str
    text: str
    created_at: float


def _session(row: sqlite3.Row) -> SessionRecord:
    data = dict(row)
    data["topics"] = json.loads(data["topics"])
    return SessionRecord.model_validate(data)


def _turn(row: sqlite3.Row) -> TurnRecord:
    data = dict(row)
    data.pop("id", None)
    data["follow_up"] = bool(data["follow_up"])
    raw = data.get("evaluation")
    data["evaluation"] = Evaluation.model_validate_json(raw) if raw else None
    return TurnRecord.model_validate(data)


def _require_waiting(updated: int, session_id: str, position: int) -> None:
    """Writes to a turn are conditional on it still awaiting an answer; none is overwritten."""
    if not updated:
        raise StoreError(f"turn {position} of session {session_id} is not awaiting an answer")


class Store:
    """A thread-safe handle on one SQLite file (one connection, serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the history database {path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._enable_wal()
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _enable_wal(self) -> None:
        """Switch to WAL, waiting out another process that is creating the same new file.

        Leaving rollback-journal mode needs an exclusive lock, and SQLite reports that one as
        busy at once instead of calling the busy handler, so the wait is ours.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                    raise
                time.sleep(_BUSY_POLL_S)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Upgrade the schema in one write transaction that also reads its version, so two
        processes opening a new database at once cannot both run the same migration."""
        with self._transaction() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {current}, newer than this release "
                    f"understands ({SCHEMA_VERSION}); upgrade the app"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")

    # -- sessions -----------------------------------------------------------------------
    def create_session(
        self,
        *,
        role: str,
        topics: Sequence[str],
        difficulty: int,
        length: int,
        mode: str,
        seed: int,
        grader: str,
        model: str | None,
    ) -> SessionRecord:
        session_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, created_at, updated_at, role, topics, difficulty,"
                " length, mode, seed, grader, model) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    session_id,
                    now,
                    now,
                    role,
                    json.dumps(list(topics)),
                    difficulty,
                    length,
                    mode,
                    seed,
                    grader,
                    model,
                ),
            )
        return self.get_session(session_id)

    def get_session(self, session_id: str) -> SessionRecord:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if row is None:
            raise SessionNotFoundError(f"no interview session {session_id!r}")
        return _session(row)

    def list_sessions(self, limit: int = 200) -> list[SessionRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM sessions ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_session(r) for r in rows]

    def finish_session(self, session_id: str) -> None:
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE sessions SET status='finished', finished_at=?, updated_at=? WHERE id=?",
                (now, now, session_id),
            )

    def delete_session(self, session_id: str) -> bool:
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
        return bool(deleted)

    def _touch(self, conn: sqlite3.Connection, session_id: str) -> None:
        conn.execute("UPDATE sessions SET updated_at=? WHERE id=?", (time.time(), session_id))

    # -- turns ----------------------------------------------------------------------------
    def add_turn(
        self,
        session_id: str,
        *,
        item_id: str,
        parent_id: str | None,
        topic: str,
        difficulty: int,
        question_text: str,
        reason: str,
        follow_up: bool,
    ) -> TurnRecord:
        with self._transaction() as conn:
            position = int(
                conn.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM turns WHERE session_id = ?",
                    (session_id,),
                ).fetchone()[0]
            )
            conn.execute(
                "INSERT INTO turns (session_id, position, item_id, parent_id, topic, difficulty,"
                " question_text, reason, follow_up, asked_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    session_id,
                    position,
                    item_id,
                    parent_id,
                    topic,
                    difficulty,
                    question_text,
                    reason,
                    int(follow_up),
                    time.time(),
                ),
            )
            self._touch(conn, session_id)
        return self.get_turn(session_id, position)

    def get_turn(self, session_id: str, position: int) -> TurnRecord:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM turns WHERE session_id = ? AND position = ?", (session_id, position)
            ).fetchone()
        if row is None:
            raise SessionNotFoundError(f"session {session_id!r} has no turn {position}")
        return _turn(row)

    def turns(self, session_id: str) -> list[TurnRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM turns WHERE session_id = ? ORDER BY position", (session_id,)
            ).fetchall()
        return [_turn(r) for r in rows]

    def record_answer(
        self,
        session_id: str,
        position: int,
        answer_text: str,
        *,
        transcript: str | None = None,
        audio_seconds: float | None = None,
    ) -> None:
        """Persist the answer before anything else happens to it (grading may crash)."""
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE turns SET status='answered', answer_text=?, transcript=?,"
                " audio_seconds=?, answered_at=? WHERE session_id=? AND position=?"
                " AND status='asked'",
                (answer_text, transcript, audio_seconds, time.time(), session_id, position),
            ).rowcount
            _require_waiting(updated, session_id, position)
            self._touch(conn, session_id)

    def record_evaluation(
        self, session_id: str, position: int, evaluation: Evaluation, score: float
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE turns SET status='graded', evaluation=?, score=?, graded_at=?,"
                " grading_ms=? WHERE session_id=? AND position=?",
                (
                    evaluation.model_dump_json(),
                    score,
                    time.time(),
                    evaluation.grader.latency_ms,
                    session_id,
                    position,
                ),
            )
            self._touch(conn, session_id)

    def record_skip(self, session_id: str, position: int) -> None:
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE turns SET status='skipped', answered_at=? WHERE session_id=?"
                " AND position=? AND status='asked'",
                (time.time(), session_id, position),
            ).rowcount
            _require_waiting(updated, session_id, position)
            self._add_event(conn, session_id, position, "skip", "")

    def record_hint(self, session_id: str, position: int, hint: str) -> None:
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE turns SET hints = hints + 1 WHERE session_id=? AND position=?"
                " AND status='asked'",
                (session_id, position),
            ).rowcount
            _require_waiting(updated, session_id, position)
            self._add_event(conn, session_id, position, "hint", hint)

    def record_event(self, session_id: str, position: int | None, kind: str, text: str) -> None:
        with self._transaction() as conn:
            self._add_event(conn, session_id, position, kind, text)

    def _add_event(
        self, conn: sqlite3.Connection, session_id: str, position: int | None, kind: str, text: str
    ) -> None:
        conn.execute(
            "INSERT INTO events (session_id, turn_position, kind, text, created_at)"
            " VALUES (?,?,?,?,?)",
            (session_id, position, kind, text, time.time()),
        )
        self._touch(conn, session_id)

    def events(self, session_id: str) -> list[EventRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT turn_position, kind, text, created_at FROM events WHERE session_id = ?"
                " ORDER BY id",
                (session_id,),
            ).fetchall()
        return [EventRecord.model_validate(dict(r)) for r in rows]

    def score_history(self) -> list[dict[str, Any]]:
        """(session time, topic, score) for every graded turn: the data of the trend chart."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id AS session_id, s.created_at, t.topic, t.score FROM turns t"
                " JOIN sessions s ON s.id = t.session_id WHERE t.score IS NOT NULL"
                " ORDER BY s.created_at, t.position"
            ).fetchall()
        return [dict(r) for r in rows]
