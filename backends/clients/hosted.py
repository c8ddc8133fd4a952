"""Hosted models through litellm: `anthropic/NAME`, `ollama/NAME`, `openai/NAME` without an
`--api-base`, ... (an OpenAI-compatible server one runs, `openai/NAME` with an `--api-base`, is
called directly: `lmc.backends.clients.served`).

litellm is imported on first use (it is slow to import and reads a cost map from the network
unless told not to). API keys come from the environment as litellm reads them; they never enter a
request, the cache key or an artifact.

lmc retries calls itself (litellm and the OpenAI SDK are told not to), so that every call, the
first of a process included, is retried the same way: see `lmc.backends.clients.remote`. A call
that fails for good says so in one line: the model, its address, and what the server said.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from lmc.backends.base import LMRequest
from lmc.backends.clients.remote import (
    Failure,
    HostedLMError,
    RemoteLM,
    Reply,
    TryFailed,
    checked_api_base,
    connection_failed,
    no_reply_in_time,
    reply_of,
    response_format,
    server_message,
    status_failure,
    unusable,
)
from lmc.backends.clients.retry import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, one_line

__all__ = ["HostedLM", "HostedLMError", "checked_api_base", "open_hosted"]


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise HostedLMError("hosted models need litellm: pip install 'lmc[litellm]'") from None
    litellm.suppress_debug_info = True
    # A reply whose content is not a string makes pydantic warn on stderr before litellm fails;
    # lmc says what was wrong itself, in one line.
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
    return litellm


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


class HostedLM(RemoteLM):
    """Any litellm model string; `api_base` points at a server of that provider."""

    def _try(self, request: LMRequest, style: str) -> Reply:
        litellm = _litellm()
        options: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            # lmc retries (see RemoteLM); litellm and the OpenAI SDK under it must not as well.
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
        if request.reply_schema is not None:
            options["response_format"] = response_format(style, request.reply_schema)
        try:
            if request.prompt is not None:
                result = litellm.text_completion(prompt=request.prompt, **options)
            else:
                messages = [{"role": m.role, "content": m.content} for m in request.messages]
                result = litellm.completion(messages=messages, **options)
        except Exception as error:  # litellm raises many provider-specific types
            raise TryFailed(_failure(error, self.timeout_s)) from None
        return reply_of(result, chat=request.prompt is None)


def _failure(error: BaseException, timeout_s: float) -> Failure:
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
            return no_reply_in_time(timeout_s)
    for cause in chain:
        if isinstance(cause, httpx.TransportError) or _named(cause, "APIConnectionError"):
            return connection_failed(_reason(chain[-1]))
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and _named(
        error, "RateLimitError", "ServiceUnavailableError", "BadGatewayError"
    ):
        return _status_failure(status, getattr(error, "response", None), error)
    if status == 500 or type(error).__name__ in ("APIError", "APIResponseValidationError"):
        # How litellm says it could not read a reply, when no HTTP error lies under it: a 200
        # whose body is not JSON, or not a completion. (A provider whose 500s carry no HTTP
        # error underneath would land here too, unretried; the OpenAI-style ones do carry it.)
        return unusable(_unusable(chain))
    if isinstance(status, int):
        return _status_failure(status, getattr(error, "response", None), error)
    return Failure(_reason(error) or type(error).__name__, transient=False)


def _status_failure(status: int, response: Any, error: BaseException | None = None) -> Failure:
    phrase = getattr(response, "reason_phrase", None)
    try:
        text = response.text
    except Exception:  # no response, or one whose body was never read
        text = None
    return status_failure(
        status,
        phrase=phrase if isinstance(phrase, str) else "",
        headers=getattr(response, "headers", None),
        message=server_message(text) or _reason(error),
    )


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
