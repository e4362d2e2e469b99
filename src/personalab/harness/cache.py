"""A content-addressed cache of generations in SQLite (WAL mode).

The key is a hash of what determines a generation: the model (id and weight hash), the messages or prompt, the
sampling parameters and the seed. The endpoint is not part of it, so the same generation is reused whether it
came from a local server, a replica or a remote one. Every finished generation is committed at once, so an
interrupted run loses nothing, and ``INSERT OR IGNORE`` on the primary key means nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from personalab.paths import data_dir

#: Bump when the meaning of a cached record changes, so old records stop matching.
CACHE_SCHEMA = 1

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS generations_model ON generations(model_id);
CREATE TABLE IF NOT EXISTS unreadable (
    key TEXT NOT NULL,
    model_id TEXT,
    response TEXT,
    found_at REAL NOT NULL
);
"""
_COLUMNS = ("key", "model_id", "request", "response", "created_at")


class CacheCorrupt(RuntimeError):
    """The cache file is damaged or is not a generation cache; ``personalab cache --repair`` moves it aside."""


def cache_key(payload: Mapping[str, Any]) -> str:
    """A stable sha256 over canonical JSON (sorted keys, no whitespace) of ``payload``."""
    canonical = json.dumps({"schema": CACHE_SCHEMA, **payload}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_cache_path() -> Path:
    """The project's generation cache (``<data dir>/generations.sqlite``)."""
    return data_dir() / "generations.sqlite"


class GenerationCache:
    """Thread-safe get/put of JSON records keyed by :func:`cache_key`; safe for several processes at once."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        problem = self.problem()
        if problem:
            self.close()
            raise CacheCorrupt(f"{self.path} is not a usable generation cache ({problem}); run "
                               "`personalab cache --repair` to move it aside and start a new one (nothing is deleted).")

    def problem(self) -> str | None:
        """Why this file cannot serve as the cache (None if it can); creates the tables in a new file."""
        try:
            conn = self._conn()
            columns = [row[1] for row in conn.execute("PRAGMA table_info(generations)")]
            if columns and tuple(columns) != _COLUMNS:
                return f"its generations table has the columns {', '.join(columns)}"
            other = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                     if row[0] not in ("generations", "unreadable")]
            if other and not columns:
                return f"it is another SQLite database (tables: {', '.join(sorted(other))})"
            conn.executescript(_SCHEMA_SQL)
        except sqlite3.DatabaseError as err:
            return str(err)
        return None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached response for ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """All cached responses among ``keys`` (one query per 500 keys). A row that does not parse is moved to
        the ``unreadable`` table with a warning and counts as missing, so it is generated again."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT key, model_id, response FROM generations WHERE key IN ({marks})", chunk)
            for key, model_id, response in rows.fetchall():
                try:
                    record = json.loads(response)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except (TypeError, ValueError):
                    self._set_aside(key, model_id, response)
                    continue
                found[key] = record
        return found

    def _set_aside(self, key: str, model_id: Any, response: Any) -> None:
        warnings.warn(f"{self.path}: the cached generation {key[:12]} does not parse; it was moved to the "
                      "'unreadable' table and will be generated again.", RuntimeWarning, stacklevel=3)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO unreadable (key, model_id, response, found_at) VALUES (?, ?, ?, ?)",
                         (key, str(model_id), str(response), time.time()))
            conn.execute("DELETE FROM generations WHERE key = ?", (key,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put(self, key: str, model_id: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
        """Store one record; returns False when the key was already present (nothing is overwritten)."""
        cur = self._conn().execute(
            "INSERT OR IGNORE INTO generations (key, model_id, request, response, created_at) VALUES (?, ?, ?, ?, ?)",
            (key, model_id, json.dumps(request, ensure_ascii=False), json.dumps(response, ensure_ascii=False), time.time()),
        )
        return cur.rowcount == 1

    def count(self, model_id: str | None = None) -> int:
        """Number of cached generations (for one model, or all)."""
        if model_id is None:
            return self._conn().execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM generations WHERE model_id = ?", (model_id,)).fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def repair(path: Path | str | None = None) -> Path | None:
    """Move an unusable cache file (and its WAL/SHM companions) aside with a timestamp and start a new one.

    Returns where the old file went, or None when the cache was usable and nothing was moved. Never deletes.
    """
    path = Path(path) if path is not None else default_cache_path()
    if not path.exists():
        return None
    try:
        GenerationCache(path).close()
        return None
    except CacheCorrupt:
        pass
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(aside.with_name(aside.name + suffix))
    GenerationCache(path).close()
    return aside
