"""Hosted and served models through litellm: `openai/NAME` with an `--api-base`, `ollama/NAME`, ...

litellm is imported on first use (it is slow to import and reads a cost map from the network
unless told not to). API keys come from the environment as litellm reads them; they never enter a
request, the cache key or an artifact.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lmc.backends.base import LMRequest, LMResponse


class HostedLMError(Exception):
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
        if request.json_schema is not None:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "outputs", "schema": json.loads(request.json_schema)},
            }
        started = time.perf_counter()
        try:
            if request.prompt is not None:
                result = litellm.text_completion(prompt=request.prompt, **options)
                text = result.choices[0].text
            else:
                messages = [{"role": m.role, "content": m.content} for m in request.messages]
                result = litellm.completion(messages=messages, **options)
                text = result.choices[0].message.content or ""
        except Exception as error:  # litellm raises many provider-specific types
            raise HostedLMError(f"{self.model}: {type(error).__name__}: {error}") from None
        usage = getattr(result, "usage", None)
        return LMResponse(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=time.perf_counter() - started,
        )
