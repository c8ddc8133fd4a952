"""The LM response cache: sqlite in WAL mode under `LMC_CACHE_DIR` (default `~/.cache/lmc`).

Keyed by (model identity, rendered request, decoding parameters), all of which are in the request;
safe for several processes at once; every hit is a fresh value. Keys and secrets never enter it:
the model identity is a file hash or a model name with a credential-free address.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lmc.backends.base import LMRequest, LMResponse
from lmc.files import cache_dir

SCHEMA_VERSION = 1


def request_key(model: str, request: LMRequest) -> str:
    payload = {"v": SCHEMA_VERSION, "model": model, "request": request.to_json()}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    path: Path
    entries: int
    bytes: int
    models: dict[str, int]


def _set_up(connection: sqlite3.Connection) -> None:
    """WAL mode and the table. Switching a new file to WAL takes a lock that sqlite's busy
    timeout does not wait for, so processes that start together retry here."""
    for attempt in range(100):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, created REAL NOT NULL,"
                " response TEXT NOT NULL)"
            )
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 99:
                raise
            time.sleep(0.01 * (1 + attempt % 10))


class ResponseCache:
    """One sqlite file; a connection per thread, since sqlite connections are not shared."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "lm-cache.sqlite"
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            _set_up(connection)
            self._local.connection = connection
        return connection

    def get(self, model: str, request: LMRequest) -> LMResponse | None:
        row = (
            self._connection()
            .execute("SELECT response FROM responses WHERE key = ?", (request_key(model, request),))
            .fetchone()
        )
        if row is None:
            return None
        data = json.loads(row[0])
        return LMResponse(
            text=data["text"],
            prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"],
            latency_s=0.0,
            cached=True,
        )

    def put(self, model: str, request: LMRequest, response: LMResponse) -> None:
        data = {
            "text": response.text,
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
        }
        self._connection().execute(
            "INSERT OR REPLACE INTO responses (key, model, created, response) VALUES (?, ?, ?, ?)",
            (request_key(model, request), model, time.time(), json.dumps(data)),
        )

    def stats(self) -> CacheStats:
        if not self.path.exists():
            return CacheStats(self.path, 0, 0, {})
        rows = (
            self._connection()
            .execute("SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model")
            .fetchall()
        )
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return CacheStats(self.path, sum(n for _, n in rows), size, dict(rows))

    def clear(self) -> int:
        if not self.path.exists():
            return 0
        connection = self._connection()
        (removed,) = connection.execute("SELECT COUNT(*) FROM responses").fetchone()
        connection.execute("DELETE FROM responses")
        connection.execute("VACUUM")
        return int(removed)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
