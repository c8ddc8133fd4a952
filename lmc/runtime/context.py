"""`RunContext`: everything a run needs (LM, backend, cache, trace, counters), passed explicitly.

Which context an eager call (`lmc.Predict(Sig)(question=...)`, `program(...)`) uses, first match:
1. the innermost `with lmc.configure(...)` / `with lmc.context(...)` block of this thread or task;
2. the innermost open block that this thread was started inside (a thread started in a block
   sees it; threads that were already running when the block opened do not);
3. the process default set by a top-level `lmc.configure(...)`;
4. `$LMC_LM`, else the embedded model, made once.
A configured model is therefore never replaced by the embedded one behind the user's back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lmc.backends.base import Backend, LMClient, LMResponse
from lmc.backends.clients import DEFAULT_MODEL, ModelSpec, model_spec, open_lm
from lmc.errors import InputError, RunError
from lmc.plugins import BACKENDS, EXECUTORS
from lmc.runtime.cache import ResponseCache
from lmc.runtime.gate import CallGate
from lmc.runtime.stats import RunStats
from lmc.runtime.trace import CallHistory, TraceWriter

if TYPE_CHECKING:
    from lmc.ir.graph import IndexRef
    from lmc.runtime.executor import RecordExecutor

DEFAULT_BACKEND = "json"
HISTORY = 100  # LM calls a context remembers for inspect_history


@dataclass
class RunContext:
    lm: LMClient
    backend: Backend
    cache: ResponseCache | None = None
    trace: TraceWriter | None = None
    concurrency: int = 4
    stats: RunStats = field(default_factory=RunStats)
    retrievers: dict[IndexRef, Any] = field(default_factory=dict)  # Python retrievers opened
    workers: ThreadPoolExecutor | None = field(default=None, repr=False)
    budget: Budget | None = None
    # Called with (record, step id, inputs, outputs) after each step: how a compile pass sees
    # what the program did.
    on_step: Callable[[int | None, str, dict[str, Any], dict[str, Any]], None] | None = None
    # Called with (record, response) after each LM call, cache hits too: how an evaluation
    # counts each example's calls and tokens.
    on_call: Callable[[int | None, LMResponse], None] | None = None
    # The model as the user named it (`local`, `openai/NAME`), recorded in compiled artifacts
    # so that they run on it again; None for a client passed in directly.
    model: str | None = None
    # DSPy's retrieval model: what a `lmc.Retrieve(k=...)` without an index retrieves with.
    rm: Any = None
    # The latest LM calls, read as trace lines, for `lmc.inspect_history(n)`.
    history: CallHistory = field(default_factory=lambda: CallHistory(HISTORY))
    # What the client was made from, so that another process can make its own (a cluster's
    # workers); None for a client passed in directly.
    model_spec: ModelSpec | None = None
    # Where a dataset's records run (`run_records`); None: in this process.
    executor: RecordExecutor | None = field(default=None, repr=False)
    _gate: CallGate = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._gate = CallGate(self.lm.max_concurrency)

    def derived(self, **changes: Any) -> RunContext:
        """A copy with `changes` (its own counters, observers, ...) that still takes its LM
        calls' turns at this context's gate: one model, one line of calls."""
        copy = replace(self, **changes)
        copy._gate = self._gate
        return copy

    def lm_gate(self) -> CallGate:
        """At most `lm.max_concurrency` LM calls at once, however the run is scheduled; a
        step's waiting calls kept together (see `lmc.runtime.gate`)."""
        return self._gate

    _blocks: list[_Block] = field(default_factory=list, init=False, repr=False)

    def __enter__(self) -> RunContext:
        # `with lmc.configure(...)` scopes the model to the block: undo the process default
        # that the call itself set, unless something else has replaced it since.
        _scopes.undo_default(self)
        block = _Block(self, _CURRENT.set(self), frozenset(threading.enumerate()))
        self._blocks.append(block)
        _scopes.open(block)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        block = self._blocks.pop()
        _scopes.close(block)
        _CURRENT.reset(block.token)


class BudgetExhausted(RunError):
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

    def count(self, calls: int) -> None:
        """Calls spent elsewhere, from a share of this budget lent out (a cluster's workers)."""
        with self._lock:
            self.used += calls

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used


@dataclass(frozen=True, eq=False)
class _Block:
    """One open `with` block: its context, and the threads that were running when it opened
    (they keep their own model; threads started later inside it see this one)."""

    context: RunContext
    token: Token[RunContext | None]
    threads_before: frozenset[threading.Thread]


class _Scopes:
    """The process default and the open blocks, shared by every thread, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._default: RunContext | None = None
        # What the latest `configure` replaced, to put back if that call turns out to be the
        # head of a `with` statement.
        self._replaced: RunContext | None = None
        self._blocks: list[_Block] = []

    def set_default(self, context: RunContext) -> None:
        with self._lock:
            self._replaced, self._default = self._default, context

    def undo_default(self, context: RunContext) -> None:
        with self._lock:
            if self._default is context:
                self._default, self._replaced = self._replaced, None

    def open(self, block: _Block) -> None:
        with self._lock:
            self._blocks.append(block)

    def close(self, block: _Block) -> None:
        with self._lock:
            self._blocks.remove(block)

    def inherited(self, thread: threading.Thread) -> RunContext | None:
        with self._lock:
            for block in reversed(self._blocks):
                if thread not in block.threads_before:
                    return block.context
        return None

    def default(self) -> RunContext:
        with self._lock:
            if self._default is None:
                self._default = context()
            return self._default

    def current_default(self) -> RunContext | None:
        with self._lock:
            return self._default

    def configured_default_rm(self) -> Any:
        with self._lock:
            return self._default.rm if self._default is not None else None

    def reset(self) -> None:
        """Forget the process default (tests start from a fresh process's state)."""
        with self._lock:
            self._default = self._replaced = None


_CURRENT: ContextVar[RunContext | None] = ContextVar("lmc_run_context", default=None)
_scopes = _Scopes()


def context(
    lm: str | LMClient | None = None,
    *,
    backend: str | Backend = DEFAULT_BACKEND,
    api_base: str | None = None,
    cache: bool = True,
    trace: str | None = None,
    concurrency: int = 4,
    rm: Any = None,
    timeout: float | None = None,
    retries: int | None = None,
    executor: str | RecordExecutor = "local",
) -> RunContext:
    """A run context, to pass explicitly or to scope with `with lmc.context(...):`. `lm` is a model
    string (`local`, `local:PATH.gguf`, a litellm string) or a client; by default `$LMC_LM`, else
    the embedded local model. A hosted or served model waits `timeout` seconds per try and
    retries a call that failed for a passing reason `retries` times (default 120 s and 5).
    `executor` is where dataset runs and evaluations run their records: `"local"` (this
    process), `"ray"` (the Ray cluster this process is connected to, else a new local one), or
    an executor made with options (`RayExecutor(address=..., workers=...)`)."""
    spec: ModelSpec | None
    if lm is None or isinstance(lm, str):
        model = lm or os.environ.get("LMC_LM") or DEFAULT_MODEL
        spec = ModelSpec(model, api_base, timeout, retries)
        # Only the limits that were set: the client's own defaults otherwise.
        limits: dict[str, Any] = {"timeout": timeout, "retries": retries}
        client = open_lm(spec.model, api_base, **{k: v for k, v in limits.items() if v is not None})
    elif timeout is not None or retries is not None:
        raise InputError("timeout and retries belong to the model: lmc.LM(..., timeout=, retries=)")
    else:
        client, spec = lm, model_spec(lm)
    return RunContext(
        model=None if spec is None else spec.model,
        model_spec=spec,
        lm=client,
        backend=BACKENDS.load(backend)() if isinstance(backend, str) else backend,
        cache=ResponseCache().open() if cache else None,
        trace=TraceWriter(trace) if trace else None,
        concurrency=concurrency,
        rm=rm,
        executor=EXECUTORS.load(executor)() if isinstance(executor, str) else executor,
    )


def configure(
    lm: str | LMClient | None = None,
    *,
    backend: str | Backend = DEFAULT_BACKEND,
    api_base: str | None = None,
    cache: bool = True,
    trace: str | None = None,
    concurrency: int = 4,
    rm: Any = None,
    timeout: float | None = None,
    retries: int | None = None,
    executor: str | RecordExecutor = "local",
) -> RunContext:
    """Like `context(...)`, and also the process default from now on, as `dspy.configure` is;
    `with lmc.configure(...):` instead scopes it to the block (and leaves the default alone)."""
    made = context(
        lm,
        backend=backend,
        api_base=api_base,
        cache=cache,
        trace=trace,
        concurrency=concurrency,
        rm=rm,
        timeout=timeout,
        retries=retries,
        executor=executor,
    )
    _scopes.set_default(made)
    return made


def current_context() -> RunContext:
    """The context eager calls run on (see the module's docstring for the order)."""
    scoped = _CURRENT.get()
    if scoped is not None:
        return scoped
    return _scopes.inherited(threading.current_thread()) or _scopes.default()


def configured_rm() -> Any:
    """The retrieval model of the context an eager call would run on, if one is configured;
    never makes the default context (tracing a program must not load a model)."""
    scoped = _CURRENT.get() or _scopes.inherited(threading.current_thread())
    if scoped is not None:
        return scoped.rm
    return _scopes.configured_default_rm()


def inspect_history(n: int = 1, context: RunContext | None = None) -> None:
    """Print the last `n` LM calls of the current context (prompt, reply, parsed fields), as
    DSPy's `inspect_history` does; `lmc trace show` draws a trace file the same way."""
    from rich.console import Console

    from lmc.runtime.trace import show_trace

    chosen = context or _CURRENT.get() or _scopes.inherited(threading.current_thread())
    chosen = chosen or _scopes.current_default()
    calls = list(chosen.history)[-n:] if chosen is not None and n > 0 else []
    console = Console(highlight=False, markup=False)
    if not calls:
        console.print("no LM calls yet")
    show_trace(calls, console)


def reset_default() -> None:
    """Forget what a top-level `lmc.configure` set: the next eager call starts from `$LMC_LM`."""
    _scopes.reset()
