"""`RunContext`: everything a run needs (LM, backend, cache, trace, counters), passed explicitly.

`lmc.configure(...)` makes one; used as `with lmc.configure(lm=...):` it is also what eager calls
(`lmc.Predict(Sig)(question=...)`) use in that block, in that thread or task only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from lmc.backends import registry
from lmc.backends.base import Backend, LMClient
from lmc.backends.clients import DEFAULT_MODEL, open_lm
from lmc.runtime.cache import ResponseCache
from lmc.runtime.stats import RunStats
from lmc.runtime.trace import TraceWriter

DEFAULT_BACKEND = "json"


@dataclass
class RunContext:
    lm: LMClient
    backend: Backend
    cache: ResponseCache | None = None
    trace: TraceWriter | None = None
    concurrency: int = 4
    stats: RunStats = field(default_factory=RunStats)
    retrievers: dict[str, Any] = field(default_factory=dict)
    workers: ThreadPoolExecutor | None = field(default=None, repr=False)
    budget: Budget | None = None
    # Called with (record, step id, inputs, outputs) after each step: how a compile pass sees
    # what the program did.
    on_step: Callable[[int | None, str, dict[str, Any], dict[str, Any]], None] | None = None
    # The model as the user named it (`local`, `openai/NAME`), recorded in compiled artifacts
    # so that they run on it again; None for a client passed in directly.
    model: str | None = None
    _gate: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._gate = threading.BoundedSemaphore(self.lm.max_concurrency)

    def lm_gate(self) -> threading.BoundedSemaphore:
        """At most `lm.max_concurrency` LM calls at once, however the run is scheduled."""
        return self._gate

    _tokens: list[Token[RunContext | None]] = field(default_factory=list, repr=False)

    def __enter__(self) -> RunContext:
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _CURRENT.reset(self._tokens.pop())


class BudgetExhausted(Exception):
    """The next LM call would go over the call budget; nothing was spent on it."""


class Budget:
    """A limit on LM calls (cache hits are free), shared by every run that counts against it."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def spend(self) -> None:
        with self._lock:
            if self.limit is not None and self.used >= self.limit:
                raise BudgetExhausted(f"the budget of {self.limit} LM calls is spent")
            self.used += 1

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used


_CURRENT: ContextVar[RunContext | None] = ContextVar("lmc_run_context", default=None)
_DEFAULT: list[RunContext] = []


def configure(
    lm: str | LMClient | None = None,
    *,
    backend: str | Backend = DEFAULT_BACKEND,
    api_base: str | None = None,
    cache: bool = True,
    trace: str | None = None,
    concurrency: int = 4,
) -> RunContext:
    """A run context: `lm` is a model string (`local`, `local:PATH.gguf`, a litellm string) or a
    client; by default `$LMC_LM`, else the embedded local model."""
    model = lm if isinstance(lm, str) else None
    if lm is None or isinstance(lm, str):
        model = lm or os.environ.get("LMC_LM") or DEFAULT_MODEL
        client = open_lm(model, api_base)
    else:
        client = lm
    return RunContext(
        model=model,
        lm=client,
        backend=registry.get(backend) if isinstance(backend, str) else backend,
        cache=ResponseCache() if cache else None,
        trace=TraceWriter(trace) if trace else None,
        concurrency=concurrency,
    )


def current_context() -> RunContext:
    """The context of the enclosing `with lmc.configure(...)`, else a default one (made once)."""
    context = _CURRENT.get()
    if context is not None:
        return context
    if not _DEFAULT:
        _DEFAULT.append(configure())
    return _DEFAULT[0]
