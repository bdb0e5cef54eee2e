"""Conversations, turns and every command with its result, in SQLite.

The database lives at ``$XDG_STATE_HOME/archy/history.db``. A new question continues the most
recent conversation if it was active within ``continue_minutes`` (unless ``--new``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import state_dir

__all__ = ["CommandRecord", "Conversation", "Memory", "Turn"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn_id INTEGER REFERENCES turns(id) ON DELETE SET NULL,
    command_id TEXT,
    command TEXT NOT NULL,
    session TEXT NOT NULL DEFAULT '',
    risk TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    state TEXT,
    exit_code INTEGER,
    output TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_conversation ON commands(conversation_id, id);
"""


@dataclass(frozen=True)
class Conversation:
    id: int
    started_at: float
    updated_at: float
    title: str
    provider: str
    model: str


@dataclass(frozen=True)
class Turn:
    id: int
    conversation_id: int
    role: str
    text: str
    created_at: float


@dataclass(frozen=True)
class CommandRecord:
    """One command the brain proposed, and what became of it.

    ``outcome``: ``ran``, ``declined`` (by the user), ``refused`` (by the executor's policy) or
    ``failed`` (an executor error).
    """

    command: str
    outcome: str
    risk: str = ""
    command_id: str | None = None
    session: str = ""
    state: str | None = None
    exit_code: int | None = None
    output: str = ""
    duration_ms: int | None = None
    detail: str = ""
    id: int | None = None
    conversation_id: int | None = None
    created_at: float | None = None


class Memory:
    """A thread-safe handle on the history database."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is None:
            directory = state_dir()
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = directory / "history.db"
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations ------------------------------------------------------------------------

    def new_conversation(self, title: str = "", provider: str = "", model: str = "") -> int:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO conversations (started_at, updated_at, title, provider, model) "
                "VALUES (?, ?, ?, ?, ?)",
                (now, now, title[:200], provider, model),
            )
            return int(cur.lastrowid or 0)

    def recent_conversation(self, within_minutes: float) -> Conversation | None:
        """The latest conversation if it was active within ``within_minutes``."""
        since = time.time() - within_minutes * 60
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM conversations WHERE updated_at >= ? "
                "ORDER BY updated_at DESC, id DESC LIMIT 1",
                (since,),
            ).fetchone()
        return Conversation(**dict(row)) if row else None

    def conversation(self, conversation_id: int) -> Conversation | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        return Conversation(**dict(row)) if row else None

    def conversations(self, limit: int = 20) -> list[Conversation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [Conversation(**dict(r)) for r in rows]

    # -- turns and commands -------------------------------------------------------------------

    def add_turn(self, conversation_id: int, role: str, text: str) -> int:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO turns (conversation_id, role, text, created_at) VALUES (?, ?, ?, ?)",
                (conversation_id, role, text, now),
            )
            self._db.execute(
                "UPDATE conversations SET updated_at = ?, "
                "title = CASE WHEN title = '' AND ? = 'user' THEN ? ELSE title END WHERE id = ?",
                (now, role, text[:200], conversation_id),
            )
            return int(cur.lastrowid or 0)

    def turns(self, conversation_id: int, last: int | None = None) -> list[Turn]:
        with self._lock:
            if last is None:
                rows = self._db.execute(
                    "SELECT * FROM turns WHERE conversation_id = ? ORDER BY id", (conversation_id,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM (SELECT * FROM turns WHERE conversation_id = ? "
                    "ORDER BY id DESC LIMIT ?) ORDER BY id",
                    (conversation_id, last),
                ).fetchall()
        return [Turn(**dict(r)) for r in rows]

    def add_command(self, conversation_id: int, turn_id: int | None, record: CommandRecord) -> int:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO commands (conversation_id, turn_id, command_id, command, session, "
                "risk, outcome, state, exit_code, output, duration_ms, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    turn_id,
                    record.command_id,
                    record.command,
                    record.session,
                    record.risk,
                    record.outcome,
                    record.state,
                    record.exit_code,
                    record.output,
                    record.duration_ms,
                    record.detail,
                    now,
                ),
            )
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            return int(cur.lastrowid or 0)

    def commands(
        self, conversation_id: int | None = None, limit: int = 50, turn_id: int | None = None
    ) -> list[CommandRecord]:
        query = "SELECT * FROM commands"
        args: list[object] = []
        where = []
        if conversation_id is not None:
            where.append("conversation_id = ?")
            args.append(conversation_id)
        if turn_id is not None:
            where.append("turn_id = ?")
            args.append(turn_id)
        if where:
            query += " WHERE " + " AND ".join(where)
        query = f"SELECT * FROM ({query} ORDER BY id DESC LIMIT ?) ORDER BY id"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d.pop("turn_id", None)
            out.append(CommandRecord(**d))
        return out

    def iter_all(self) -> Iterator[tuple[Conversation, list[Turn], list[CommandRecord]]]:
        for conv in reversed(self.conversations(limit=1_000_000)):
            yield conv, self.turns(conv.id), self.commands(conv.id, limit=1_000_000)
