"""Hosted and served models through litellm: `openai/NAME` with an `--api-base`, `ollama/NAME`, ...

litellm is imported on first use (it is slow to import and reads a cost map from the network
unless told not to). API keys come from the environment as litellm reads them; they never enter a
request, the cache key or an artifact.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lmc.backends.base import LMRequest, LMResponse
from lmc.errors import RecordFailure


class HostedLMError(RecordFailure):
    """The provider could not be reached or refused the call, after litellm's retries."""


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise HostedLMError(
            "hosted and served models need litellm: pip install 'lmc[litellm]'"
        ) from None
    litellm.suppress_debug_info = True
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


def open_hosted(model: str, api_base: str | None) -> HostedLM:
    """Any litellm model string (`openai/NAME`, `ollama/llama3`, ...)."""
    return HostedLM(model, api_base)


class HostedLM:
    """Any litellm model string; `api_base` points at a served model (an OpenAI-style server)."""

    constrains = False

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        *,
        concurrency: int = 8,
        num_retries: int = 2,
        timeout_s: float = 120.0,
    ):
        self.model = model
        self.api_base = api_base
        self.max_concurrency = concurrency
        self.num_retries = num_retries
        self.timeout_s = timeout_s
        # OpenAI's `json_schema` response format first; llama-cpp-python's server only knows
        # `json_object` with a `schema`, and says so: then that form, from then on.
        self._schema_styles = ["json_schema", "json_object"]
        self._lock = threading.Lock()

    @property
    def enforces_schema(self) -> bool:
        # Servers one runs (llama.cpp, vLLM, Ollama) decode under the schema; a hosted API may
        # only check it, and need not accept length bounds.
        return self.api_base is not None

    @property
    def identity(self) -> str:
        base = _public(self.api_base)
        return f"litellm:{self.model}" + (f"@{base}" if base else "")

    def chat_template(self) -> str | None:
        return None

    def complete(self, request: LMRequest) -> LMResponse:
        litellm = _litellm()
        options: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "num_retries": self.num_retries,
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
        while True:
            style = self._schema_styles[0]
            if request.json_schema is not None:
                options["response_format"] = _response_format(style, request.json_schema)
                # While the server's response format is unknown, a refusal is not retried.
                probing = len(self._schema_styles) > 1
                options["num_retries"] = 0 if probing else self.num_retries
                options["max_retries"] = 0 if probing else self.num_retries
            try:
                text, usage = self._call(litellm, request, options)
                if request.json_schema is not None:
                    self._schema_styles = [style]
                break
            except Exception as error:  # litellm raises many provider-specific types
                status = getattr(error, "status_code", None)
                said_so = "response_format" in str(error) or status in (400, 422)
                refused_format = said_so and request.json_schema is not None
                # Another call may have learned the server's format meanwhile: then retry too.
                learned = self._schema_styles[0] != style
                if refused_format and (learned or len(self._schema_styles) > 1):
                    with self._lock:  # concurrent calls may learn this at the same time
                        if self._schema_styles[0] == style and len(self._schema_styles) > 1:
                            self._schema_styles.pop(0)
                    continue
                raise HostedLMError(f"{self.model}: {type(error).__name__}: {error}") from None
        return LMResponse(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=time.perf_counter() - started,
        )

    def _call(self, litellm: Any, request: LMRequest, options: dict[str, Any]) -> tuple[str, Any]:
        if request.prompt is not None:
            result = litellm.text_completion(prompt=request.prompt, **options)
            return result.choices[0].text, getattr(result, "usage", None)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        result = litellm.completion(messages=messages, **options)
        return result.choices[0].message.content or "", getattr(result, "usage", None)


def _response_format(style: str, schema_text: str) -> dict[str, Any]:
    schema = json.loads(schema_text)
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "outputs", "schema": schema}}
    return {"type": "json_object", "schema": schema}
