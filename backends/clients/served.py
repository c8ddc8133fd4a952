"""A served model: `openai/NAME` with an `--api-base`, an OpenAI-compatible server one runs
(llama.cpp, vLLM, Ollama's OpenAI endpoint, LM Studio, ...), called directly.

It POSTs to `{api_base}/chat/completions`, or `{api_base}/completions` for a raw prompt, with the
stdlib's `http.client`, on one keep-alive connection per thread (lmc calls from worker threads),
and never imports litellm: a served run starts in a fraction of the time and memory. It behaves
as the litellm client does (`lmc.backends.clients.remote`: retries, the response-format probe,
one-line errors, the same cache identity). The API key is `$OPENAI_API_KEY` if set, else a dummy
a local server accepts; it is read for each request and kept nowhere.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import threading
from typing import Any
from urllib.parse import urlsplit

from lmc.backends.base import LMRequest
from lmc.backends.clients.gbnf import reply_grammar
from lmc.backends.clients.remote import (
    RemoteLM,
    Reply,
    TryFailed,
    connection_failed,
    no_reply_in_time,
    reply_of,
    response_format,
    server_message,
    status_failure,
    unusable,
)
from lmc.backends.clients.retry import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, one_line
from lmc.errors import InputError

PROVIDER = "openai/"  # the one provider whose servers are called directly


def open_served(
    model: str,
    api_base: str | None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
) -> ServedLM:
    """`openai/NAME` at `api_base`, an OpenAI-compatible server (`served:NAME` is the same)."""
    if api_base is None:
        raise InputError(f"served model {model!r} needs the address of its server: --api-base")
    return ServedLM(
        model if model.startswith(PROVIDER) else PROVIDER + model,
        api_base,
        timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
    )


class ServedLM(RemoteLM):
    """`openai/NAME` at `api_base` (required), called with the stdlib."""

    # llama.cpp's server and llama-cpp-python's hold a reply to a GBNF `grammar` sent with the
    # request; a server that refuses one is asked free from then on.
    reasoning_styles = ("grammar", "free")

    def __init__(self, model: str, api_base: str | None, **options: Any):
        super().__init__(model, api_base, **options)
        if self.api_base is None:
            raise InputError(f"served model {model!r} needs the address of its server: --api-base")
        parts = urlsplit(self.api_base)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path.rstrip("/")
        self._query = f"?{parts.query}" if parts.query else ""
        self._name = model.removeprefix(PROVIDER)  # what the server calls it, as litellm sends
        self._local = threading.local()  # each thread's keep-alive connection

    def _try(self, request: LMRequest, style: str) -> Reply:
        chat = request.prompt is None
        payload: dict[str, Any] = {"model": self._name}
        if chat:
            payload["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        else:
            payload["prompt"] = request.prompt
        payload["temperature"] = request.temperature
        payload["max_tokens"] = request.max_tokens
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.reasoning_first and style == "grammar":
            payload["grammar"] = reply_grammar(request, steered=False)
        elif request.reply_schema is not None:
            payload["response_format"] = response_format(style, request.reply_schema)
        path = "/chat/completions" if chat else "/completions"
        response, raw = self._post(path, json.dumps(payload).encode())
        text = raw.decode("utf-8", errors="replace")
        if not 200 <= response.status < 300:
            raise TryFailed(
                status_failure(
                    response.status,
                    phrase=response.reason,
                    headers=response.headers,
                    message=server_message(text),
                )
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            problem = f"its body is not JSON ({error.msg}, at character {error.pos})"
            raise TryFailed(unusable(problem)) from None
        if not isinstance(data, dict):
            problem = f"it is not a JSON object: {one_line(repr(data), 80)}"
            raise TryFailed(unusable(problem))
        if "choices" not in data:
            problem = f"it has no 'choices' (its keys: {one_line(repr(sorted(data)), 80)})"
            raise TryFailed(unusable(problem))
        return reply_of(data, chat=chat)

    def _post(self, path: str, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """The server's response to one POST and its whole body; `TryFailed` when there was
        none (no connection, no reply in time, the connection dropped mid-reply)."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY') or 'sk-local'}",
            "User-Agent": "lmc",
        }
        connection = self._connection()
        try:
            connection.request("POST", self._path + path + self._query, body, headers)
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError:
            self._drop(connection)
            raise TryFailed(no_reply_in_time(self.timeout_s)) from None
        except http.client.IncompleteRead as error:
            self._drop(connection)
            expected = len(error.partial) + (error.expected or 0)
            reason = (
                "the server closed the connection in the middle of its reply "
                f"(received {len(error.partial)} bytes, expected {expected})"
            )
            raise TryFailed(connection_failed(reason)) from None
        except (OSError, http.client.HTTPException) as error:
            self._drop(connection)
            raise TryFailed(connection_failed(_reason(error))) from None
        if response.will_close:
            self._drop(connection)
        return response, raw

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection to the server: the one kept alive from its last call unless
        the server has closed it meanwhile, else a new one."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and _dropped(connection):
            self._drop(connection)
            connection = None
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self.timeout_s)
            self._local.connection = connection
        return connection

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the server: it is readable (at its
    end, or with bytes nobody asked for) while no request is in flight."""
    sock = connection.sock
    if sock is None:
        return False  # not connected yet
    try:
        if hasattr(select, "poll"):  # any descriptor number, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reason(error: BaseException) -> str:
    """An error's own words (`Connection refused`, not `[Errno 111] Connection refused`)."""
    if isinstance(error, OSError) and error.strerror:
        return one_line(error.strerror, 200)
    text = str(error) or type(error).__name__
    if isinstance(error, http.client.RemoteDisconnected):
        text = "the server closed the connection without a reply"
    return one_line(text, 200)
