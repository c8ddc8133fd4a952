"""What every client of a model behind HTTP shares, whichever way it calls: the retry loop, the
probe of a server's response-format style, and the one line a failed call ends in.

Two clients build on it: `lmc.backends.clients.served` (an OpenAI-compatible server one runs,
called directly with the stdlib) and `lmc.backends.clients.hosted` (any other provider, through
litellm). A client says how one try goes (`RemoteLM._try`); a try that fails says why as a
`Failure`, and this module decides whether to learn the server's format, wait and try again
(see `lmc.backends.clients.retry`), or give up in one line: the model, its address, and what the
server said.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lmc.backends.base import LMCallFailed, LMRequest, LMResponse
from lmc.backends.clients import retry
from lmc.backends.clients.retry import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    Backoff,
    one_line,
    retried_status,
    retry_after_seconds,
)
from lmc.errors import InputError


class HostedLMError(LMCallFailed):
    """The provider or server could not be reached, refused the call or answered with something
    that is not a completion, after every retry the failure allowed."""


def public_url(url: str | None) -> str:
    """The server address without credentials or query, fit for a cache key."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def checked_api_base(url: str | None) -> str | None:
    """`url` if it is a server address (`http(s)://HOST[:PORT]/PATH`); else an `InputError`
    saying what is wrong with it, before any call is made."""
    if url is None:
        return None
    problem = None
    if not url.strip():
        problem = "it is empty"
    elif any(c.isspace() or not c.isprintable() for c in url):
        problem = "it contains spaces or control characters"
    else:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        else:
            try:
                parts.port  # noqa: B018 -- parsing the port is the check
            except ValueError:
                problem = "its port is not a number from 0 to 65535"
    if problem is not None:
        raise InputError(
            f"api base {url!r} is not a server address: {problem}; expected "
            "http(s)://HOST[:PORT]/PATH, such as http://127.0.0.1:8000/v1"
        )
    return url


def response_format(style: str, schema_text: str) -> dict[str, Any]:
    """The `response_format` of a request for a JSON object of this schema, in OpenAI's style
    (`json_schema`) or llama-cpp-python's server's (`json_object` with a `schema`)."""
    schema = json.loads(schema_text)
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "outputs", "schema": schema}}
    return {"type": "json_object", "schema": schema}


# Failures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What went wrong with one try, as the user should read it, and whether to try again."""

    said: str
    transient: bool
    status: int | None = None
    retry_after: float | None = None


class TryFailed(Exception):
    """One try of a call failed, for the reason its `failure` gives."""

    def __init__(self, failure: Failure):
        super().__init__(failure.said)
        self.failure = failure


def unusable(problem: str) -> Failure:
    """A reply that is not a completion: a server that answers so would again."""
    return Failure(f"the server's reply is not usable: {problem}", transient=False)


def no_reply_in_time(timeout_s: float) -> Failure:
    return Failure(f"no reply within the timeout of {timeout_s:g} s", transient=True)


def connection_failed(reason: str) -> Failure:
    return Failure(f"connection failed: {reason or 'the connection failed'}", transient=True)


def status_failure(
    status: int, *, phrase: str = "", headers: object = None, message: str = ""
) -> Failure:
    """An error status the server answered with, its reason phrase (else the standard one),
    its headers (for `Retry-After`) and the message its body says."""
    if not phrase:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    said = f"server said {status} {phrase}".rstrip()
    if message:
        said = f"{said}: {message}"
    return Failure(
        one_line(said),
        transient=retried_status(status),
        status=status,
        retry_after=retry_after_seconds(headers),
    )


def server_message(text: object) -> str:
    """The message in an error reply's body (OpenAI's `{"error": {"message": ...}}`, or a
    `message` or `detail`), else its text; "" when there is none to read."""
    if not isinstance(text, str) or not text.strip():
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text, 200)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            data = error
        elif isinstance(error, str):
            return one_line(error, 200)
        for key in ("message", "detail"):
            value = data.get(key)
            if isinstance(value, str):
                return one_line(value, 200)
            if value is not None:
                return one_line(json.dumps(value), 200)
    return one_line(text, 200)


# Replies -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_prompt_tokens: int | None = None  # None: the server did not say


def _get(holder: object, name: str) -> Any:
    """A field of a reply, whether it was parsed as JSON (a dict) or as litellm's objects."""
    if isinstance(holder, dict):
        return holder.get(name)
    return getattr(holder, name, None)


def reply_of(result: object, *, chat: bool) -> Reply:
    """The text and token counts of a completion (a chat completion, or a text completion);
    a reply without a text is a failure of the call (`TryFailed`), not an empty text."""
    choices = _get(result, "choices")
    if not choices:
        problem = "it has no choices"
    elif not isinstance(choices, list):
        problem = f"its 'choices' is not a list: {one_line(repr(choices), 80)}"
    else:
        choice = choices[0]
        holder = _get(choice, "message") if chat else choice
        content = _get(holder, "content" if chat else "text")
        if isinstance(holder, str | int | float | list):  # parsed JSON: not an object
            what = "its message" if chat else "its first choice"
            problem = f"{what} is not an object: {one_line(repr(holder), 80)}"
        elif isinstance(content, str):
            usage = _get(result, "usage")
            return Reply(
                content,
                _count(usage, "prompt_tokens"),
                _count(usage, "completion_tokens"),
                _cached_tokens(usage),
            )
        elif content is None:
            reason = _get(choice, "finish_reason")
            problem = "its content is null" + (f" (finish reason {reason!r})" if reason else "")
        else:
            problem = f"its content is not a string: {one_line(repr(content), 80)}"
    raise TryFailed(unusable(problem))


def _count(usage: object, name: str) -> int:
    value = _whole(_get(usage, name) if usage is not None else None)
    return 0 if value is None else value


def _cached_tokens(usage: object) -> int | None:
    """The prompt tokens the server took from its prefix cache, where it says (OpenAI and
    llama.cpp's server send `usage.prompt_tokens_details.cached_tokens`; llama-cpp-python's
    server does not): None when it does not, since unknown is not zero."""
    details = _get(usage, "prompt_tokens_details") if usage is not None else None
    cached = _whole(_get(details, "cached_tokens") if details is not None else None)
    return cached if cached is not None and cached >= 0 else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# The client --------------------------------------------------------------------------------------


class RemoteLM:
    """A model behind HTTP, at `api_base` when it is a server one runs (an OpenAI-style server).

    Each try waits at most `timeout_s` for the server; a try that fails for a passing reason
    (see `lmc.backends.clients.retry`) is followed by up to `retries` more, waiting as `backoff`
    says (and as the server's `Retry-After` asks: a wait it asks for holds every call of this
    client, not only the one it answered). Subclasses say how one try goes (`_try`)."""

    constrains = False
    # How a reply that opens with plain-text reasoning is held, best first: no JSON Schema
    # describes it, so only a client that can send a GBNF grammar holds it (`ServedLM`).
    reasoning_styles: tuple[str, ...] = ("free",)

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        *,
        concurrency: int = 8,
        retries: int = DEFAULT_RETRIES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        backoff: Backoff | None = None,
    ):
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a whole number, 0 or more, not {retries!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
            raise InputError(f"timeout must be a number of seconds, not {timeout_s!r}")
        if not 0 < timeout_s < float("inf"):
            raise InputError(f"timeout must be more than 0 seconds, not {timeout_s!r}")
        self.model = model
        self.api_base = checked_api_base(api_base)
        self.max_concurrency = concurrency
        self.retries = retries
        self.timeout_s = float(timeout_s)
        self.backoff = backoff or retry.DEFAULT_BACKOFF  # looked up now: tests replace it
        # OpenAI's `json_schema` response format first; llama-cpp-python's server only knows
        # `json_object` with a `schema`, and says so: then that form, from then on.
        self._schema_styles = ["json_schema", "json_object"]
        self._reasoning_styles = list(self.reasoning_styles)  # a server that refuses one: the next
        self._lock = threading.Lock()
        self._not_before = 0.0  # no call starts before this (backoff clock): a Retry-After

    @property
    def enforces_schema(self) -> bool:
        # Servers one runs (llama.cpp, vLLM, Ollama) decode under the schema; a hosted API may
        # only check it, and need not accept length bounds.
        return self.api_base is not None

    @property
    def identity(self) -> str:
        # "litellm:" for every client, the direct one included: the cache key of a served model
        # is what it was before lmc called servers itself, so its cached replies stay valid.
        base = public_url(self.api_base)
        return f"litellm:{self.model}" + (f"@{base}" if base else "")

    @property
    def described(self) -> str:
        """The model and where it is served, without credentials: for messages."""
        base = public_url(self.api_base)
        return f"model {self.model}" + (f" at {base}" if base else "")

    def chat_template(self) -> str | None:
        return None

    def _try(self, request: LMRequest, style: str) -> Reply:
        """One try of `request`, asking for `style` of response format if it has a schema (of
        `reasoning_styles` if it opens with reasoning); `TryFailed` when it did not get a
        completion."""
        raise NotImplementedError

    def _styles(self, request: LMRequest) -> list[str]:
        """The ways left to hold this kind of reply, best first (the first is the one used)."""
        return self._reasoning_styles if request.reasoning_first else self._schema_styles

    def complete(self, request: LMRequest) -> LMResponse:
        started = time.perf_counter()
        self._wait_for_server()
        first_try = self.backoff.clock()
        tries = 0
        refused: list[str] = []  # the forms the server refused for this call
        while True:
            left = [s for s in self._styles(request) if s not in refused]
            style = left[0] if left else self._styles(request)[0]
            try:
                reply = self._try(request, style)
            except TryFailed as failed:
                failure = failed.failure
                if len(left) > 1 and self._refused_format(failure, request):
                    refused.append(style)
                    continue  # the same call, in the next form the server may know: not a retry
                tries += 1
                if not failure.transient:
                    raise HostedLMError(f"{self.described}: {failure.said}") from None
                self._back_off(failure, tries, first_try)
                continue
            self._learn(request, style)
            break
        return LMResponse(
            text=reply.text,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_s=time.perf_counter() - started,
            reused_prompt_tokens=reply.reused_prompt_tokens,
        )

    def _refused_format(self, failure: Failure, request: LMRequest) -> bool:
        """Whether the server may have refused the call's response format (or grammar), so
        that the call is tried in the next form. llama-cpp-python's server refuses with a 500
        that names `response_format`; a 429 or a 503 that does not is retried. A 400 or a 422
        may be a refusal of the format or of the call itself (a prompt too long): the form is
        only learned, for all calls, once a call succeeds in it (`_learn`)."""
        if failure.status is None or not (request.reasoning_first or request.reply_schema):
            return False
        named = "grammar" if request.reasoning_first else "response_format"
        return failure.status in (400, 422) or named in failure.said

    def _learn(self, request: LMRequest, style: str) -> None:
        """The server took this form of held reply: every call asks in it from now on."""
        with self._lock:  # concurrent calls may learn this at the same time
            if request.reply_schema is not None:
                self._schema_styles = [style]
            elif request.reasoning_first:
                self._reasoning_styles = [style]

    def _back_off(self, failure: Failure, tries: int, first_try: float) -> None:
        """Wait before the next try, or raise if there is to be none."""
        backoff = self.backoff
        if tries > self.retries:
            after = f"after {tries} tries" if tries > 1 else "not retried: retries are 0"
            raise HostedLMError(f"{self.described}: {failure.said} ({after})")
        elapsed = backoff.clock() - first_try
        wait = backoff.delay(tries, failure.retry_after, elapsed)
        if wait is None:
            if failure.retry_after is not None and failure.retry_after > backoff.max_wait_s:
                raise HostedLMError(
                    f"{self.described}: {failure.said}; it asks to be left alone for "
                    f"{failure.retry_after:g} s, more than the {backoff.max_wait_s:g} s lmc "
                    f"waits at most (after {tries} {_tries(tries)})"
                )
            raise HostedLMError(
                f"{self.described}: {failure.said} (after {tries} {_tries(tries)} in "
                f"{elapsed:.0f} s)"
            )
        with self._lock:
            now = backoff.clock()
            if failure.retry_after is not None:
                self._not_before = max(self._not_before, now + wait)
            # Another call may have been told to hold every call for longer.
            wait = max(wait, self._not_before - now)
        backoff.sleep(wait)

    def _wait_for_server(self) -> None:
        """Hold a new call while the server has asked (by `Retry-After`) to be left alone."""
        with self._lock:
            left = self._not_before - self.backoff.clock()
        if left > 0:
            self.backoff.sleep(left)


def _tries(n: int) -> str:
    return "try" if n == 1 else "tries"
