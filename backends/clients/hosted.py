"""Hosted and served models through litellm: `openai/NAME` with an `--api-base`, `ollama/NAME`, ...

litellm is imported on first use (it is slow to import and reads a cost map from the network
unless told not to). API keys come from the environment as litellm reads them; they never enter a
request, the cache key or an artifact.

lmc retries calls itself (litellm and the OpenAI SDK are told not to), so that every call, the
first of a process included, is retried the same way: see `lmc.backends.clients.retry`. A call
that fails for good says so in one line: the model, its address, and what the server said.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
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
    """The provider could not be reached, refused the call or answered with something that is
    not a completion, after every retry the failure allowed."""


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise HostedLMError(
            "hosted and served models need litellm: pip install 'lmc[litellm]'"
        ) from None
    litellm.suppress_debug_info = True
    # A reply whose content is not a string makes pydantic warn on stderr before litellm fails;
    # lmc says what was wrong itself, in one line.
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
    return litellm


def _public(url: str | None) -> str:
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


def open_hosted(
    model: str,
    api_base: str | None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
) -> HostedLM:
    """Any litellm model string (`openai/NAME`, `ollama/llama3`, ...)."""
    return HostedLM(
        model,
        api_base,
        timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
    )


class HostedLM:
    """Any litellm model string; `api_base` points at a served model (an OpenAI-style server).

    Each try waits at most `timeout_s` for the server; a try that fails for a passing reason
    (see `lmc.backends.clients.retry`) is followed by up to `retries` more, waiting as `backoff`
    says (and as the server's `Retry-After` asks: a wait it asks for holds every call of this
    client, not only the one it answered)."""

    constrains = False

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
        self._lock = threading.Lock()
        self._not_before = 0.0  # no call starts before this (backoff clock): a Retry-After

    @property
    def enforces_schema(self) -> bool:
        # Servers one runs (llama.cpp, vLLM, Ollama) decode under the schema; a hosted API may
        # only check it, and need not accept length bounds.
        return self.api_base is not None

    @property
    def identity(self) -> str:
        base = _public(self.api_base)
        return f"litellm:{self.model}" + (f"@{base}" if base else "")

    @property
    def described(self) -> str:
        """The model and where it is served, without credentials: for messages."""
        base = _public(self.api_base)
        return f"model {self.model}" + (f" at {base}" if base else "")

    def chat_template(self) -> str | None:
        return None

    def complete(self, request: LMRequest) -> LMResponse:
        litellm = _litellm()
        options: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            # lmc retries (below); litellm and the OpenAI SDK under it must not as well.
            "num_retries": 0,
            "max_retries": 0,
            "timeout": self.timeout_s,
        }
        if self.api_base:
            options["api_base"] = self.api_base
            # OpenAI-style servers on localhost need some key; a real one comes from the env.
            if self.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
                options["api_key"] = "sk-local"
        if request.stop:
            options["stop"] = list(request.stop)
        started = time.perf_counter()
        self._wait_for_server()
        first_try = self.backoff.clock()
        tries = 0
        while True:
            style = self._schema_styles[0]
            if request.json_schema is not None:
                options["response_format"] = _response_format(style, request.json_schema)
            try:
                text, usage = self._call(litellm, request, options)
            except HostedLMError:
                raise
            except Exception as error:  # litellm raises many provider-specific types
                failure = _failure(error, self.timeout_s)
                if self._refused_format(failure, style, request):
                    continue  # the same call, in the form the server knows: not a retry
                tries += 1
                if not failure.transient:
                    raise HostedLMError(f"{self.described}: {failure.said}") from None
                self._back_off(failure, tries, first_try)
                continue
            if request.json_schema is not None:
                self._schema_styles = [style]
            break
        return LMResponse(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=time.perf_counter() - started,
        )

    def _refused_format(self, failure: _Failure, style: str, request: LMRequest) -> bool:
        """Whether the server refused this response format and another is left to try (then
        the server's format is learned, once for all calls). llama-cpp-python's server refuses
        with a 500 that names `response_format`; a 429 or a 503 that does not is retried."""
        if request.json_schema is None or failure.status is None:
            return False
        if failure.status not in (400, 422) and "response_format" not in failure.said:
            return False
        # Another call may have learned the server's format meanwhile: then retry too.
        learned = self._schema_styles[0] != style
        if not (learned or len(self._schema_styles) > 1):
            return False
        with self._lock:  # concurrent calls may learn this at the same time
            if self._schema_styles[0] == style and len(self._schema_styles) > 1:
                self._schema_styles.pop(0)
        return True

    def _back_off(self, failure: _Failure, tries: int, first_try: float) -> None:
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

    def _call(self, litellm: Any, request: LMRequest, options: dict[str, Any]) -> tuple[str, Any]:
        if request.prompt is not None:
            result = litellm.text_completion(prompt=request.prompt, **options)
        else:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            result = litellm.completion(messages=messages, **options)
        return self._text(result, chat=request.prompt is None), getattr(result, "usage", None)

    def _text(self, result: Any, *, chat: bool) -> str:
        """The reply's text; a reply without one is a failure of the call, not an empty text."""
        choices = getattr(result, "choices", None)
        if not choices:
            problem = "it has no choices"
        else:
            choice = choices[0]
            holder = getattr(choice, "message", None) if chat else choice
            content = getattr(holder, "content" if chat else "text", None)
            if isinstance(content, str):
                return content
            if content is None:
                reason = getattr(choice, "finish_reason", None)
                problem = "its content is null" + (f" (finish reason {reason!r})" if reason else "")
            else:
                problem = f"its content is not a string: {one_line(repr(content), 80)}"
        raise HostedLMError(f"{self.described}: the server's reply is not usable: {problem}")


def _tries(n: int) -> str:
    return "try" if n == 1 else "tries"


@dataclass(frozen=True)
class _Failure:
    """What went wrong with one try, as the user should read it, and whether to try again."""

    said: str
    transient: bool
    status: int | None = None
    retry_after: float | None = None


def _failure(error: BaseException, timeout_s: float) -> _Failure:
    """Classify what litellm raised by what lies under it: an HTTP status the server sent, no
    reply in time, no connection, or a reply that is not a completion."""
    import httpx  # litellm's (and the OpenAI SDK's) HTTP client

    chain = _chain(error)
    for cause in chain:
        if isinstance(cause, httpx.HTTPStatusError):
            return _status_failure(cause.response.status_code, cause.response)
    for cause in chain:
        if isinstance(cause, httpx.TimeoutException | TimeoutError) or _named(
            cause, "APITimeoutError", "Timeout"
        ):
            return _Failure(f"no reply within the timeout of {timeout_s:g} s", transient=True)
    for cause in chain:
        if isinstance(cause, httpx.TransportError) or _named(cause, "APIConnectionError"):
            reason = _reason(chain[-1]) or "the connection failed"
            return _Failure(f"connection failed: {reason}", transient=True)
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and _named(
        error, "RateLimitError", "ServiceUnavailableError", "BadGatewayError"
    ):
        return _status_failure(status, getattr(error, "response", None), error)
    if status == 500 or type(error).__name__ in ("APIError", "APIResponseValidationError"):
        # How litellm says it could not read a reply, when no HTTP error lies under it: a 200
        # whose body is not JSON, or not a completion. (A provider whose 500s carry no HTTP
        # error underneath would land here too, unretried; the OpenAI-style ones do carry it.)
        return _Failure(f"the server's reply is not usable: {_unusable(chain)}", transient=False)
    if isinstance(status, int):
        return _status_failure(status, getattr(error, "response", None), error)
    return _Failure(_reason(error) or type(error).__name__, transient=False)


def _status_failure(status: int, response: Any, error: BaseException | None = None) -> _Failure:
    said = f"server said {status} {_phrase(status, response)}".rstrip()
    message = _server_message(response) or (_reason(error) if error is not None else "")
    if message:
        said = f"{said}: {message}"
    return _Failure(
        one_line(said),
        transient=retried_status(status),
        status=status,
        retry_after=retry_after_seconds(getattr(response, "headers", None)),
    )


def _phrase(status: int, response: Any) -> str:
    phrase = getattr(response, "reason_phrase", None)
    if isinstance(phrase, str) and phrase:
        return phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _server_message(response: Any) -> str:
    """The message in an error reply's body (OpenAI's `{"error": {"message": ...}}`, or a
    `message` or `detail`), else its text; "" when there is none to read."""
    try:
        text = response.text
    except Exception:  # no response, or one whose body was never read
        return ""
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


def _unusable(chain: list[BaseException]) -> str:
    """Why a 200 reply could not be read, from the innermost error under litellm's."""
    from pydantic import ValidationError

    for cause in reversed(chain):
        if isinstance(cause, json.JSONDecodeError):
            return f"its body is not JSON ({cause.msg}, at character {cause.pos})"
        if isinstance(cause, ValidationError):
            first = cause.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            got = one_line(repr(first.get("input")), 80)
            if where == "content" and first["type"] == "string_type":
                return f"its content is not a string: {got}"
            return f"{where}: {first['msg']} (got {got})"
    return _reason(chain[-1]) or "it is not a completion"


def _reason(error: BaseException | None) -> str:
    """An error's own words on one line, without the class names litellm puts before them."""
    if error is None:
        return ""
    text = str(error)
    for marker in ("OpenAIException - ", "Exception - "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    while True:  # "litellm.APIError: APIError: ..." -> "..."
        head, colon, rest = text.partition(": ")
        if colon and head.replace(".", "").replace("_", "").isalnum() and " " not in head:
            if head.startswith("litellm") or head.endswith(("Error", "Exception", "Timeout")):
                text = rest
                continue
        break
    if "Traceback (most recent call last)" in text:
        text = text.split("Traceback (most recent call last)", 1)[0]
    return one_line(text, 200)


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and every error under it (its cause, else its context), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _named(error: BaseException, *names: str) -> bool:
    """Whether `error` is an instance of a class of one of these names (litellm's and the
    OpenAI SDK's classes, matched by name so that neither need be imported to tell them)."""
    return any(cls.__name__ in names for cls in type(error).__mro__)


def _response_format(style: str, schema_text: str) -> dict[str, Any]:
    schema = json.loads(schema_text)
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "outputs", "schema": schema}}
    return {"type": "json_object", "schema": schema}
