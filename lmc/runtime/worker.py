"""A worker of a cluster: what it is sent, how it runs a record, and what it sends back.

Nothing here imports Ray: a `WorkerSpec` is plain data a worker process makes its own run context
from (its own LM client, the shared on-disk cache), a program travels as its `.lmp` text, and a
record's `RecordOutcome` carries, beside its result, everything the process that runs the job
would have seen had the record run there (step observations, LM calls, counters, trace lines),
so that it can replay them into its own context: an evaluation's scores and captured demos, the
run's totals and trace are the same as on the local executor.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmc.backends.base import LMResponse
from lmc.backends.clients import ModelSpec
from lmc.errors import InputError, LmcError
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import parse_program, print_program
from lmc.plugins import BACKENDS, import_target
from lmc.runtime.cache import ResponseCache
from lmc.runtime.context import HISTORY, RunContext
from lmc.runtime.executor import RecordResult, run_record
from lmc.runtime.stats import RunStats
from lmc.runtime.trace import CallHistory, TraceLines

PROGRAMS_KEPT = 32  # parsed programs a worker keeps: a compile scores a few candidates at a time
# Programs travel with their corpus paths absolute: written relative to the root, read as a file
# in it. A worker's working folder is not the job's.
_ROOT = "/"
_AT_ROOT = "/job.lmp"


class NotForWorkers(InputError):
    """A run context a cluster's workers cannot make again in their own processes."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker makes its run context from: the model, the backend, the cache file and the
    folders its imports are found in (a program's functions), all plain and picklable."""

    model: ModelSpec
    backend: str
    cache: str | None  # the shared sqlite cache's path; None: no cache (--no-cache)
    concurrency: int
    import_paths: tuple[str, ...] = ()

    @classmethod
    def of(cls, context: RunContext) -> WorkerSpec:
        """The spec of `context`; `NotForWorkers` when a worker could not make it again."""
        if context.model_spec is None:
            raise NotForWorkers(
                "a cluster's workers make their own LM client from a model string: pass one "
                "(lmc.context('openai/NAME', api_base=...)) or a client made by lmc.LM(...)"
            )
        if context.backend.name not in BACKENDS:
            raise NotForWorkers(f"backend '{context.backend.name}' is not registered by name")
        if context.rm is not None:
            raise NotForWorkers("a retrieval model (rm=) stays in this process; use an index")
        return cls(
            model=context.model_spec,
            backend=context.backend.name,
            cache=None if context.cache is None else str(context.cache.path),
            concurrency=context.concurrency,
            import_paths=tuple(p for p in sys.path if p and Path(p).is_dir()),
        )

    def context(self) -> RunContext:
        for folder in reversed(self.import_paths):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        return RunContext(
            model=self.model.model,
            model_spec=self.model,
            lm=self.model.open(),
            backend=BACKENDS.load(self.backend)(),
            cache=None if self.cache is None else ResponseCache(Path(self.cache)).open(),
            concurrency=self.concurrency,
        )


@dataclass
class RecordOutcome:
    """A record's result and what its run would have told the job's own context."""

    result: RecordResult
    steps: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    calls: list[LMResponse] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    lines: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    # An error that ends the whole run (the budget spent, an LM unreachable): where its class is
    # and its message. Sent as text: lmc's errors take their own arguments, not a message.
    stopped: tuple[str, str] | None = None

    def replay(self, context: RunContext) -> RecordResult:
        """Tell `context` what the record's run did, as if it had run there; its result."""
        index = self.result.index
        for step, inputs, outputs in self.steps:
            if context.on_step is not None:
                context.on_step(index, step, inputs, outputs)
        for response in self.calls:
            if context.on_call is not None:
                context.on_call(index, response)
        context.stats.merge(self.stats)
        context.history.extend(self.history)
        if context.trace is not None:
            for line in self.lines:
                context.trace.write(line)
        if self.stopped is not None:
            raise rebuilt_error(*self.stopped)
        return self.result


def rebuilt_error(target: str, message: str) -> LmcError:
    """The error a worker stopped with, made again here with its message."""
    kind = import_target(target)
    error: LmcError = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


class Worker:
    """One worker process's state: its run context (made on first use, so that a model that
    cannot be opened is a record's error, not a worker that never starts) and the programs it
    was sent, parsed once each."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._context: RunContext | None = None
        self._programs: OrderedDict[str, ProgramGraph] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, program: str, index: int, inputs: dict[str, Any], budget: Any) -> RecordOutcome:
        """Record `index` of a run of `program` (`.lmp` text); LM calls spend from `budget`
        (anything with `spend()`; None: no limit)."""
        outcome = RecordOutcome(RecordResult(index, inputs))
        lines = TraceLines()
        try:
            base, graph = self._prepared(program)
            context = base.derived(
                stats=outcome.stats,
                trace=lines,
                history=CallHistory(HISTORY),
                budget=budget,
                on_step=lambda record, step, values, out: outcome.steps.append(
                    (step, dict(values), dict(out))
                ),
                on_call=lambda record, response: outcome.calls.append(response),
            )
            outcome.result = run_record(context, graph, index, inputs)
            outcome.history = list(context.history)
        except LmcError as error:
            kind = type(error)
            outcome.stopped = (f"{kind.__module__}:{kind.__qualname__}", str(error))
        outcome.lines = lines.lines
        return outcome

    def _prepared(self, program: str) -> tuple[RunContext, ProgramGraph]:
        with self._lock:
            if self._context is None:
                self._context = self.spec.context()
            graph = self._programs.get(program)
            if graph is None:
                graph = self._programs[program] = parse_program(program, _AT_ROOT)
                while len(self._programs) > PROGRAMS_KEPT:
                    self._programs.popitem(last=False)
            self._programs.move_to_end(program)
            return self._context, graph


def program_text(graph: ProgramGraph) -> str:
    """The program as workers are sent it: its `.lmp` text, paths absolute. A retriever object
    a Python program was built with cannot go with it: a worker would make its class with its
    defaults, over other documents."""
    bound = [name for name, ref in graph.indexes.items() if ref.bound is not None]
    if bound:
        raise NotForWorkers(
            f"the retriever object behind index '{bound[0]}' stays in this process, and a "
            "worker would make its class with its defaults instead; run it here "
            "(executor='local'), or retrieve from a corpus file: lmc.bm25(...)"
        )
    return print_program(graph, _ROOT)
