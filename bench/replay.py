"""A replaying proxy in front of the benchmark's model server, so a stopped run resumes inside a
phase instead of at its start.

GSM8K on the 1.5B model takes about ten hours of LM calls on two cores; a work session is three,
and everything running is stopped with it. The sides save each finished phase already; this
proxy saves each finished call. Both sides reach the server through
`http://127.0.0.1:PORT/<phase>/v1` (`common.phase_base`), and every successful reply is kept in
an SQLite file with the time it was asked and answered. When a run is resumed, the n-th request
of a phase with a given body gets the n-th reply kept for that body in that phase, and only the
rest reach the server. Requests are counted, not collapsed: a request asked twice in a phase
goes to the server twice, as it did without the proxy.

A resumed phase's wall time is what this process measured plus, for each earlier attempt, the
time from its first request to its last kept reply (`GET /<phase>/replay`): the calls that were
in flight when it stopped are asked again and counted once, in the attempt that finishes them.

The store (`bench/results/optimizers/<task>-<model>.replies.sqlite`) is committed with the
results: a session starts from a fresh checkout, so a store left out of git was lost with its
session, twice, with hours of GSM8K calls in it. Stop the run before committing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

SCHEMA = """
create table if not exists replies (
    phase text, key text, occurrence integer, body blob, asked real, answered real, attempt integer,
    primary key (phase, key, occurrence)
)
"""


class ReplayStore:
    """The kept replies, and which attempt (one proxy's life) got each."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute(SCHEMA)
        self.lock = threading.Lock()
        self.attempt = 1 + (self.db.execute("select max(attempt) from replies").fetchone()[0] or 0)
        self.asked: Counter[tuple[str, str]] = Counter()
        self.replayed: Counter[str] = Counter()

    def next_occurrence(self, phase: str, key: str) -> tuple[int, bytes | None]:
        """This request's number among its equals in the phase, and its kept reply if any."""
        with self.lock:
            occurrence = self.asked[phase, key]
            self.asked[phase, key] += 1
            row = self.db.execute(
                "select body from replies where phase=? and key=? and occurrence=?",
                (phase, key, occurrence),
            ).fetchone()
            if row is not None:
                self.replayed[phase] += 1
        return occurrence, None if row is None else bytes(row[0])

    def keep(
        self, phase: str, key: str, occurrence: int, body: bytes, asked: float, answered: float
    ) -> None:
        with self.lock:
            self.db.execute(
                "insert or replace into replies (phase, key, occurrence, body, asked, answered,"
                " attempt) values (?, ?, ?, ?, ?, ?, ?)",
                (phase, key, occurrence, body, asked, answered, self.attempt),
            )

    def report(self, phase: str) -> dict[str, float | int]:
        """What earlier attempts did in this phase, and how many replies this one replayed."""
        with self.lock:
            spans = self.db.execute(
                "select min(asked), max(answered) from replies "
                "where phase=? and attempt<? group by attempt",
                (phase, self.attempt),
            ).fetchall()
            replayed = self.replayed[phase]
        return {
            "earlier_attempts": len(spans),
            "earlier_s": sum(last - first for first, last in spans),
            "replayed_calls": replayed,
        }


def _handler(store: ReplayStore, upstream: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # the server's log has it
            pass

        def _split(self) -> tuple[str, str]:
            _, phase, rest = self.path.split("/", 2)
            return phase, "/" + rest

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            phase, rest = self._split()
            if rest == "/replay":
                self._send(200, json.dumps(store.report(phase)).encode())
                return
            self._forward("GET", rest, None)

        def do_POST(self) -> None:
            phase, rest = self._split()
            request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = hashlib.sha256(rest.encode() + b"\0" + request).hexdigest()
            occurrence, kept = store.next_occurrence(phase, key)
            if kept is not None:
                self._send(200, kept)
                return
            asked = time.time()
            status, body = self._ask("POST", rest, request)
            # Kept before it is sent: a client that gave up waiting (its timeout) has closed the
            # connection, and the reply it then asks again for would otherwise be lost to the
            # next attempt too.
            if status == 200:
                store.keep(phase, key, occurrence, body, asked, time.time())
            self._send(status, body)

        def _forward(self, method: str, rest: str, body: bytes | None) -> None:
            self._send(*self._ask(method, rest, body))

        def _ask(self, method: str, rest: str, body: bytes | None) -> tuple[int, bytes]:
            request = urllib.request.Request(
                upstream + rest,
                data=body,
                method=method,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=3600) as reply:
                    status, answer = reply.status, reply.read()
            except urllib.error.HTTPError as refused:
                status, answer = refused.code, refused.read()
            return status, answer

    return Handler


@contextlib.contextmanager
def replaying(upstream: str, path: Path) -> Iterator[str]:
    """A proxy to `upstream` (the server's root, without `/v1`) keeping replies in `path`;
    yields its root, to which `common.phase_base` adds `/<phase>/v1`."""
    store = ReplayStore(path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(store, upstream))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        store.db.close()
