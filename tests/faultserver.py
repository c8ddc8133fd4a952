"""A fault-injecting OpenAI-compatible server on 127.0.0.1, for tests of what lmc does when a
served model misbehaves (and, with `kill -9`, when lmc itself is killed mid-run).

It is a real HTTP server (stdlib `ThreadingHTTPServer`, in a background thread of the test
process) serving `/v1/chat/completions`, `/v1/completions` and `/v1/models`. Each completion
request takes the next action of a script; when the script is spent, `otherwise` answers (a good
reply unless set; `answering(f)` answers by what was asked). Every completion request is recorded,
with the time it arrived, so a test can count calls and measure the waits between them:

    server.script(rate_limited(retry_after=1), status(500), reply('{"answer": "Paris"}'))
    ... run lmc with --lm openai/x --api-base server.url ...
    assert server.calls == 3 and server.gaps()[0] >= 1.0

The `fault_server` fixture (tests/conftest.py) gives each test a fresh one.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions")
DEFAULT_CONTENT = '{"answer": "Paris"}'


@dataclass(frozen=True)
class Request:
    """One completion request as it arrived: its path, its JSON body (None if it had none that
    parsed), `time.monotonic()` at arrival, its headers and the client's port (one per
    connection)."""

    path: str
    body: Any
    at: float
    headers: Mapping[str, str] = field(default_factory=dict)
    peer: int = 0

    @property
    def chat(self) -> bool:
        return self.path.endswith("/chat/completions")


# An action answers one request through the handler (or, for a fault, fails to).
Action = Callable[["_Handler", Request], None]


def reply(content: object = DEFAULT_CONTENT, *, finish_reason: str = "stop") -> Action:
    """A valid completion whose text is `content`; any JSON value (`123`, `None`) makes a reply
    whose content is not a string."""

    def act(handler: _Handler, request: Request) -> None:
        handler.send_json(200, completion(content, chat=request.chat, finish_reason=finish_reason))

    return act


def answering(content: Callable[[Request], object]) -> Action:
    """A valid completion whose text is `content(request)`: a server that answers by what it
    was asked (a test's stand-in for a model)."""

    def act(handler: _Handler, request: Request) -> None:
        reply(content(request))(handler, request)

    return act


def payload(data: object, *, code: int = 200) -> Action:
    """This JSON as the whole body, e.g. `{"choices": []}`."""

    def act(handler: _Handler, request: Request) -> None:
        handler.send_json(code, data)

    return act


def no_choices() -> Action:
    """A well-formed completion with an empty `choices` list."""
    return lambda handler, request: handler.send_json(
        200, {**completion("", chat=request.chat), "choices": []}
    )


def body(raw: str | bytes, *, code: int = 200, content_type: str = "application/json") -> Action:
    """Any bytes as the body, e.g. malformed JSON."""
    data = raw.encode() if isinstance(raw, str) else raw

    def act(handler: _Handler, request: Request) -> None:
        handler.send_bytes(code, data, {"Content-Type": content_type})

    return act


def status(code: int, message: str | None = None, *, headers: Mapping[str, str] = {}) -> Action:
    """An error status with an OpenAI-style error body saying `message`."""
    said = message or f"fault server: {code}"

    def act(handler: _Handler, request: Request) -> None:
        error = {"error": {"message": said, "type": "fault", "param": None, "code": code}}
        handler.send_json(code, error, headers)

    return act


def rate_limited(retry_after: float | str | None = 1, message: str = "slow down") -> Action:
    """429 Too Many Requests, with `Retry-After` (seconds, or an HTTP date) unless None."""
    headers = {} if retry_after is None else {"Retry-After": _seconds(retry_after)}
    return status(429, message, headers=headers)


def hang(seconds: float, then: Action | None = None) -> Action:
    """Say nothing for `seconds` (cut short when the server closes), then `then`, or close the
    connection without a reply."""

    def act(handler: _Handler, request: Request) -> None:
        handler.server_state.closing.wait(seconds)
        if then is not None and not handler.server_state.closing.is_set():
            then(handler, request)
        else:
            handler.close_connection = True

    return act


def drop() -> Action:
    """Start a 200 reply, send half of its body, and close the connection."""

    def act(handler: _Handler, request: Request) -> None:
        data = json.dumps(completion(DEFAULT_CONTENT, chat=request.chat)).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.wfile.flush()
        handler.close_connection = True

    return act


def completion(
    content: object, *, chat: bool = True, finish_reason: str = "stop"
) -> dict[str, Any]:
    """The JSON of a completion answering `content` (a chat completion, or a text completion)."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason, "logprobs": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": content}
    else:
        choice["text"] = content
    return {
        "id": "fault-1",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": "fault",
        "choices": [choice],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
    }


def _seconds(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class _State:
    script: deque[Action] = field(default_factory=deque)
    otherwise: Action = field(default_factory=reply)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    connections: set[socket.socket] = field(default_factory=set)


class FaultServer:
    """The server; `url` is its OpenAI base address (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self, otherwise: Action | None = None) -> None:
        self._state = _State()
        if otherwise is not None:
            self._state.otherwise = otherwise
        state = self._state

        class Handler(_Handler):
            server_state = state

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        # A short poll, so that closing (after every test) takes milliseconds, not half a second.
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def script(self, *actions: Action) -> FaultServer:
        """Answer the next completion requests with these actions, in order."""
        with self._state.lock:
            self._state.script.extend(actions)
        return self

    @property
    def otherwise(self) -> Action:
        return self._state.otherwise

    @otherwise.setter
    def otherwise(self, action: Action) -> None:
        """What answers once the script is spent (a good reply by default)."""
        self._state.otherwise = action

    @property
    def requests(self) -> list[Request]:
        """Every completion request so far, in order of arrival."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def calls(self) -> int:
        return len(self.requests)

    @property
    def pending(self) -> int:
        """Script actions not used yet."""
        with self._state.lock:
            return len(self._state.script)

    def gaps(self) -> list[float]:
        """Seconds between consecutive completion requests."""
        times = [r.at for r in self.requests]
        return [b - a for a, b in pairwise(times)]

    def hang_up(self) -> None:
        """Cut every open connection, as a server does to idle keep-alive connections; it
        still listens for new ones."""
        self._cut_connections()

    def close(self) -> None:
        """Stop listening and cut every open connection (a closed server refuses calls)."""
        self._state.closing.set()
        self._http.shutdown()
        self._http.server_close()
        self._cut_connections()
        self._thread.join(timeout=5)

    def _cut_connections(self) -> None:
        with self._state.lock:
            connections = list(self._state.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server_state: _State
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers and httpx's pool expect

    def setup(self) -> None:
        super().setup()
        with self.server_state.lock:
            self.server_state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server_state.lock:
            self.server_state.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            model = {"id": "fault", "object": "model", "owned_by": "faultserver"}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if not path.endswith(COMPLETION_PATHS):
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(path, parsed, time.monotonic(), headers, self.client_address[1])
        state = self.server_state
        with state.lock:
            state.requests.append(request)
            action = state.script.popleft() if state.script else state.otherwise
        action(self, request)

    def send_json(self, code: int, data: object, headers: Mapping[str, str] = {}) -> None:
        self.send_bytes(
            code, json.dumps(data).encode(), {"Content-Type": "application/json", **headers}
        )

    def send_bytes(self, code: int, data: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test output is for the tests
