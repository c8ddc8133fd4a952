"""The LM response cache: sqlite in WAL mode under `LMC_CACHE_DIR` (default `~/.cache/lmc`).

Keyed by (model identity, rendered request, decoding parameters), all of which are in the request;
safe for several processes at once; every hit is a fresh value. Keys and secrets never enter it:
the model identity is a file hash or a model name with a credential-free address.

A cache that cannot be used (a file that is not an sqlite database, a folder where the file goes,
`$LMC_CACHE_DIR` naming a file) is a `CacheUnusable` error when the cache is opened, before any
LM call, saying what to do; it is never silently replaced, as sqlite's own tools never replace a
database they cannot read. `lmc cache clear` removes a cache file that is not a database.
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
from lmc.files import CacheUnusable, cache_dir, make_cache_folder

SCHEMA_VERSION = 1


def request_key(model: str, request: LMRequest) -> str:
    payload = {"v": SCHEMA_VERSION, "model": model, "request": request.to_json()}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    # A reply quoted in a repair request may hold a lone surrogate a server sent.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# Where sqlite says the file itself is bad, not that it is busy or cannot be reached.
_CORRUPT = ("not a database", "malformed", "file is encrypted")


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

    def open(self) -> ResponseCache:
        """Open the cache now (it opens on first use otherwise), so that one that cannot be used
        is said before any work; returns itself."""
        self._connection()
        return self

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            make_cache_folder(self.path.parent)
            if self.path.is_dir():
                raise CacheUnusable(
                    f"{self.path}: is a folder, where lmc keeps its LM cache file; remove it, "
                    "or set LMC_CACHE_DIR to another folder"
                )
            try:
                connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                _set_up(connection)
            except sqlite3.Error as error:
                raise self._unusable(error) from None
            self._local.connection = connection
        return connection

    def _unusable(self, error: sqlite3.Error) -> CacheUnusable:
        if any(word in str(error) for word in _CORRUPT):
            return CacheUnusable(
                f"{self.path}: the LM cache is corrupt ({error}); remove it with "
                "`lmc cache clear` (or delete the file), or pass --no-cache"
            )
        return CacheUnusable(f"{self.path}: cannot use the LM cache ({error}); or pass --no-cache")

    def _execute(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.Error as error:
            raise self._unusable(error) from None

    def get(self, model: str, request: LMRequest) -> LMResponse | None:
        row = self._execute(
            "SELECT response FROM responses WHERE key = ?", (request_key(model, request),)
        ).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            return LMResponse(
                text=data["text"],
                prompt_tokens=data["prompt_tokens"],
                completion_tokens=data["completion_tokens"],
                latency_s=0.0,
                cached=True,
            )
        except (TypeError, ValueError, KeyError):
            return None  # an entry that does not read is a miss; the new answer replaces it

    def put(self, model: str, request: LMRequest, response: LMResponse) -> None:
        data = {
            "text": response.text,
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
        }
        self._execute(
            "INSERT OR REPLACE INTO responses (key, model, created, response) VALUES (?, ?, ?, ?)",
            (request_key(model, request), model, time.time(), json.dumps(data)),
        )

    def stats(self) -> CacheStats:
        if not self.path.exists():
            return CacheStats(self.path, 0, 0, {})
        rows = self._execute(
            "SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model"
        ).fetchall()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return CacheStats(self.path, sum(n for _, n in rows), size, dict(rows))

    def clear(self) -> int:
        """Remove every entry; the number removed."""
        if not self.path.exists():
            return 0
        (removed,) = self._execute("SELECT COUNT(*) FROM responses").fetchone()
        self._execute("DELETE FROM responses")
        self._execute("VACUUM")
        return int(removed)

    def remove_if_corrupt(self) -> bool:
        """Delete the cache file (and sqlite's files beside it) if it is not a database sqlite
        can read; whether it did."""
        if not self.path.is_file() or not self.corrupt():
            return False
        self.close()
        for leftover in (self.path, *(Path(f"{self.path}{s}") for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        return True

    def corrupt(self) -> bool:
        """Whether the cache file is one sqlite cannot read as a database."""
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as probe:
                probe.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as error:
            return any(word in str(error) for word in _CORRUPT)
        return False

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
