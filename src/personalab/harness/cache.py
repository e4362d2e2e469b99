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
"""


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
        with self._conn() as conn:
            conn.executescript(_SCHEMA_SQL)

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
        row = self._conn().execute("SELECT response FROM generations WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """All cached responses among ``keys`` (one query per 500 keys)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, response in conn.execute(f"SELECT key, response FROM generations WHERE key IN ({marks})", chunk):
                found[key] = json.loads(response)
        return found

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
