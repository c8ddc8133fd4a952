"""LM clients, chosen by model string: `KIND` or `KIND:SPEC` for a registered model kind
(`local`, `local:PATH.gguf`; see `lmc.plugins.MODEL_KINDS`), `openai/NAME` with an `api_base` (a
served model, called directly), or any other litellm `provider/name`."""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

from lmc.backends.base import LMClient
from lmc.errors import InputError
from lmc.plugins import MODEL_KINDS

DEFAULT_MODEL = "local"

# The model kinds chosen by a `provider/name` model string, not named by a prefix of their own.
BY_MODEL_STRING = frozenset({"served", "litellm"})


def LM(
    model: str = DEFAULT_MODEL,
    *,
    api_base: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> LMClient:
    """A model to run programs on, for `lmc.configure(lm=...)`: `lmc.LM("local")`,
    `lmc.LM("local:/models/qwen.gguf")`, `lmc.LM("openai/NAME", api_base="http://...")`.
    `timeout` (seconds per try) and `retries` are for hosted and served models."""
    spec = ModelSpec(model, api_base, timeout, retries)
    client = spec.open()
    with contextlib.suppress(TypeError):  # a client that cannot be a weak key is not recorded
        _MADE_FROM[client] = spec
    return client


@dataclass(frozen=True)
class ModelSpec:
    """What a client is made from: plain, picklable data, so that another process (a worker of
    a cluster) can make its own client for the same model."""

    model: str = DEFAULT_MODEL
    api_base: str | None = None
    timeout: float | None = None
    retries: int | None = None

    def open(self) -> LMClient:
        return open_lm(self.model, self.api_base, timeout=self.timeout, retries=self.retries)


# What each `LM(...)` client was made from: what a compile records as its model, so
# `lmc.configure(lm=lmc.LM("openai/x"))` compiles an artifact that runs on the same model, and
# what a cluster's workers make their own clients from.
_MADE_FROM: weakref.WeakKeyDictionary[LMClient, ModelSpec] = weakref.WeakKeyDictionary()


def model_spec(client: LMClient) -> ModelSpec | None:
    """What `client` was made from by `LM(...)`, if it was."""
    try:
        return _MADE_FROM.get(client)
    except TypeError:  # a client that cannot be a weak key (an unhashable test double)
        return None


def model_string(client: LMClient) -> str | None:
    """The model string `client` was made from by `LM(...)`, if it was."""
    spec = model_spec(client)
    return None if spec is None else spec.model


def open_lm(
    model: str = DEFAULT_MODEL,
    api_base: str | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
) -> LMClient:
    """The client for a model string (see the CLI spec's MODEL). `timeout` and `retries` (None:
    the defaults of `lmc.backends.clients.retry`) apply to served and litellm models; a model
    kind of its own (`local`, a plug-in) is called as `factory(spec, api_base)` and calls as it
    will. `openai/NAME` with an `api_base` is the `served` kind, which never imports litellm."""
    kind, _, spec = model.partition(":")
    if "/" not in kind and kind in MODEL_KINDS:
        client: LMClient = MODEL_KINDS.load(kind)(spec, api_base)
        return client
    if "/" not in model:
        kinds = ", ".join(f"{k}, {k}:SPEC" for k in MODEL_KINDS.names() if k not in BY_MODEL_STRING)
        raise InputError(
            f"unknown model '{model}': expected {kinds}, or a litellm model string such as "
            "openai/gpt-4o-mini or ollama/llama3"
        )
    # An OpenAI-compatible server one runs is called directly; any other provider via litellm.
    by = "served" if api_base is not None and model.startswith("openai/") else "litellm"
    remote: LMClient = MODEL_KINDS.load(by)(model, api_base, timeout=timeout, retries=retries)
    return remote
