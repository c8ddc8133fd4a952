"""LM clients, chosen by model string: `local`, `local:PATH.gguf`, or any litellm model string."""

from __future__ import annotations

from lmc.backends.base import LMClient

DEFAULT_MODEL = "local"


def LM(model: str = DEFAULT_MODEL, *, api_base: str | None = None) -> LMClient:
    """A model to run programs on, for `lmc.configure(lm=...)`: `lmc.LM("local")`,
    `lmc.LM("local:/models/qwen.gguf")`, `lmc.LM("openai/NAME", api_base="http://...")`."""
    return open_lm(model, api_base)


def open_lm(model: str = DEFAULT_MODEL, api_base: str | None = None) -> LMClient:
    """The client for a model string (see the CLI spec's MODEL)."""
    if model == "local" or model.startswith("local:"):
        from lmc.backends.clients.local import LocalLM

        if api_base:
            raise ValueError("--api-base is for served models; local runs in this process")
        return LocalLM(model.partition(":")[2] or None)
    if "/" not in model:
        raise ValueError(
            f"unknown model '{model}': expected local, local:PATH.gguf, or a litellm model "
            "string such as openai/gpt-4o-mini or ollama/llama3"
        )
    from lmc.backends.clients.hosted import HostedLM

    return HostedLM(model, api_base)
