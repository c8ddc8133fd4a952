"""The optimizer benchmark's replaying proxy (bench/replay.py): a run stopped inside a phase
resumes there, its replayed calls counted and its earlier time kept, on a real HTTP server."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[bytes]]]:
    """A model server on 127.0.0.1 that numbers its replies and remembers what it was asked."""
    asked: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            asked.append(body)
            if b"slow" in body:
                time.sleep(0.5)
            status = 400 if b"refuse" in body else 200
            reply = json.dumps({"reply": len(asked), "path": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


def _post(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_resumed_phase_replays_what_it_got_and_asks_only_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, upstream: tuple[str, list[bytes]]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from common import in_phase, resumed
    from replay import replaying

    server, asked = upstream
    store = tmp_path / "replies.sqlite"
    question = {"messages": [{"role": "user", "content": "2 + 2?"}]}
    with replaying(server, store) as root:
        config = in_phase({"replay_root": root}, "dspy-rs-compile")
        url = config["api_base"] + "/chat/completions"
        first = [_post(url, question) for _ in range(2)]
        assert _post(url, {"refuse": True})[0] == 400  # passed on, not kept
        # the phase's door reaches the server's own path
        assert first[0][1]["path"] == "/v1/chat/completions"
    # the same request twice went to the server twice: counted, not collapsed
    assert [reply["reply"] for _, reply in first] == [1, 2]
    assert len(asked) == 3

    with replaying(server, store) as root:
        config = in_phase({"replay_root": root}, "dspy-rs-compile")
        url = config["api_base"] + "/chat/completions"
        again = [_post(url, question) for _ in range(3)]
        other_phase = in_phase({"replay_root": root}, "lmc-compile")["api_base"]
        assert _post(other_phase + "/chat/completions", question)[1]["reply"] == 5
        figures = resumed(config, {"wall_s": 10.0, "n": 4, "examples_per_s": 0.4})
    # the first two replies are the kept ones; only the third reached the server
    assert [reply["reply"] for _, reply in again] == [1, 2, 4]
    assert len(asked) == 5
    assert figures["replay"]["replayed_calls"] == 2
    assert figures["replay"]["earlier_attempts"] == 1
    earlier = figures["replay"]["earlier_s"]
    assert figures["wall_s"] == pytest.approx(10.0 + earlier)
    assert figures["examples_per_s"] == pytest.approx(4 / (10.0 + earlier))

    # asked something else (a prompt changed since), a phase replays nothing, and the earlier
    # attempt's time is not its own
    with replaying(server, store) as root:
        config = in_phase({"replay_root": root}, "lmc-compile")
        assert _post(config["api_base"] + "/chat/completions", {"changed": 1})[0] == 200
        assert resumed(config, {"wall_s": 1.0}) == {"wall_s": 1.0}


def test_a_phase_run_straight_through_keeps_its_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, upstream: tuple[str, list[bytes]]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from common import in_phase, resumed
    from replay import replaying

    server, _ = upstream
    assert in_phase({"api_base": "http://x/v1"}, "lmc-test") == {"api_base": "http://x/v1"}
    with replaying(server, tmp_path / "replies.sqlite") as root:
        config = in_phase({"replay_root": root}, "lmc-test")
        _post(config["api_base"] + "/chat/completions", {"q": 1})
        assert resumed(config, {"wall_s": 3.0}) == {"wall_s": 3.0}


def test_a_reply_the_client_gave_up_waiting_for_is_kept_for_the_next_attempt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, upstream: tuple[str, list[bytes]]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from common import in_phase
    from replay import replaying

    server, asked = upstream
    store = tmp_path / "replies.sqlite"
    slow = {"messages": [{"role": "user", "content": "slow"}]}
    with replaying(server, store) as root:
        url = in_phase({"replay_root": root}, "lmc-test")["api_base"] + "/chat/completions"
        with pytest.raises(TimeoutError):
            _post(url, slow, timeout=0.1)
        time.sleep(1)  # the server answers after the client has gone

    with replaying(server, store) as root:
        url = in_phase({"replay_root": root}, "lmc-test")["api_base"] + "/chat/completions"
        assert _post(url, slow) == (200, {"reply": 1, "path": "/v1/chat/completions"})
    assert len(asked) == 1
