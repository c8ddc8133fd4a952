"""Run a program graph: nodes in dependency order, independent steps at the same time.

Each step is lowered by the context's backend, answered through the cache or the LM, and parsed
into typed fields; a reply that does not parse gets one repair call, and then the step fails with
the raw reply kept. LM calls run in worker threads, at most `lm.max_concurrency` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import networkx as nx

from lmc.backends.base import StepView
from lmc.errors import InputError, RecordFailure, RunError
from lmc.ir.graph import (
    ConcatNode,
    ConstNode,
    FunctionNode,
    InputNode,
    ListNode,
    Node,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
)
from lmc.plugins import PYTHON_RETRIEVER
from lmc.runtime.context import RunContext
from lmc.runtime.functions import FunctionFailed, call_function, load_function
from lmc.runtime.nearest import shown_params
from lmc.runtime.steps import record_dropped, run_step, stop_if_dropped
from lmc.signatures import ModuleKind

T = TypeVar("T")


class RetrievalUnavailable(RunError):
    """A retrieve step whose index is not loaded in the run context."""


@dataclass
class _Run:
    context: RunContext
    graph: ProgramGraph
    record: int | None

    async def outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        plan = _plan(self.graph)
        tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        for node in plan.order:
            predecessors = [(tasks[s], out, field) for s, out, field in plan.incoming[node.id]]
            tasks[node.id] = asyncio.ensure_future(self.node(node, predecessors, inputs))
        try:
            await asyncio.gather(*tasks.values())
        finally:
            for task in tasks.values():
                task.cancel()
        return {name: tasks[node_id].result()["value"] for name, node_id in plan.outputs}

    async def node(
        self,
        node: Node,
        predecessors: list[tuple[asyncio.Task[dict[str, Any]], str, str]],
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        values = {}
        for task, source_field, target_field in predecessors:
            values[target_field] = (await task)[source_field]
        if node.calls_out:
            return await asyncio.to_thread(
                _in_worker, self.context, self.graph, node, values, inputs, self.record
            )
        return _evaluate(self.context, self.graph, node, values, inputs, self.record)


class _Evaluation(NamedTuple):
    """What evaluating one node may read besides the values flowing into it (a tuple: one is
    made per node per run, and a frozen dataclass costs several times as much to make)."""

    context: RunContext
    graph: ProgramGraph
    inputs: dict[str, Any]
    record: int | None


def _evaluate(
    context: RunContext,
    graph: ProgramGraph,
    node: Node,
    values: dict[str, Any],
    inputs: dict[str, Any],
    record: int | None,
) -> dict[str, Any]:
    """One node's output fields from the values flowing into it. Nodes that call out block."""
    evaluate = EVALUATORS[type(node)]
    return evaluate(_Evaluation(context, graph, inputs, record), node, values)


def _step(run: _Evaluation, node: StepNode, values: dict[str, Any]) -> dict[str, Any]:
    return _STEP_RUNS[node.module](run, node, values)


def _one_call(run: _Evaluation, node: StepNode, values: dict[str, Any]) -> dict[str, Any]:
    params = shown_params(run.graph.params[node.param_key], node.signature, values)
    view = StepView(node.signature, node.module, params)
    return run_step(run.context, node.id, view, node.options, values, run.record)


def _agent(run: _Evaluation, node: StepNode, values: dict[str, Any]) -> dict[str, Any]:
    from lmc.runtime.agent import run_agent

    params = shown_params(run.graph.params[node.param_key], node.signature, values)
    return run_agent(run.context, node, params, values, run.record)


# How each module kind runs a step.
_STEP_RUNS: dict[ModuleKind, Callable[[_Evaluation, StepNode, dict[str, Any]], dict[str, Any]]] = {
    "predict": _one_call,
    "chain_of_thought": _one_call,
    "react": _agent,
}


def _function(run: _Evaluation, node: FunctionNode, values: dict[str, Any]) -> dict[str, Any]:
    return call_function(run.context, node, values, run.record)


def _retrieval(run: _Evaluation, node: RetrieveNode, values: dict[str, Any]) -> dict[str, Any]:
    from lmc.retrieval.python import RetrieverFailed

    try:
        return {"passages": _retrieve(run.context, run.graph, node, values["query"], run.record)}
    except RetrieverFailed as failed:  # a Python retriever: it fails this record, as a step would
        path = run.graph.indexes[node.index].path
        # A retrieve written inline is named after the binding it is read into, plus `$N`.
        step = node.id.partition("$")[0]
        raise FunctionFailed(step, path, failed.problem, kind="retriever") from None


# How each kind of node computes its outputs; `tests/ir` checks that every kind has an entry.
EVALUATORS: dict[type[Node], Callable[[_Evaluation, Any, dict[str, Any]], dict[str, Any]]] = {
    InputNode: lambda run, node, values: {"value": run.inputs[node.name]},
    OutputNode: lambda run, node, values: values,
    ConstNode: lambda run, node, values: {"value": node.value},
    ListNode: lambda run, node, values: {"value": [values[f"item{i}"] for i in range(node.size)]},
    ConcatNode: lambda run, node, values: {"value": [*values["left"], *values["right"]]},
    RetrieveNode: _retrieval,
    StepNode: _step,
    FunctionNode: _function,
}


def _in_worker(*args: Any) -> dict[str, Any]:
    # A StopIteration cannot cross from a worker thread into a coroutine: asyncio would hang.
    try:
        return _evaluate(*args)
    except StopIteration as error:
        raise RuntimeError(f"StopIteration escaped an LM client or retriever: {error!r}") from None


def _retrieve(
    context: RunContext, graph: ProgramGraph, node: RetrieveNode, query: Any, record: int | None
) -> list[str]:
    retriever = _retriever(context, graph, node.index)
    context.stats.record_retrieval()
    passages: list[str] = retriever.search(str(query), node.k)
    if context.trace is not None:
        context.trace.retrieval(
            record=record,
            step=node.id,
            index=node.index,
            query=str(query),
            k=node.k,
            passages=passages,
        )
    return passages


def _retriever(context: RunContext, graph: ProgramGraph, name: str) -> Any:
    """The program's index `name`. Known by what it is, not its name: two programs run on one
    context may each call their corpus `corpus`. A corpus file's index is kept by
    `open_retriever`, which opens it again once the file changed; a Python retriever is the
    object the program was built with, else one made from its class and kept by the context."""
    from lmc.files import DataError
    from lmc.retrieval.index import open_retriever

    ref = graph.indexes.get(name)
    if ref is None:
        raise RetrievalUnavailable(f"index '{name}' is not declared by the program")
    if ref.kind != PYTHON_RETRIEVER:
        try:
            return open_retriever(Path(ref.path), ref.kind, ref.text_field)
        except DataError as error:
            raise RetrievalUnavailable(f"index '{name}': {error}") from None
    from lmc.retrieval.python import PythonRetriever

    if ref.bound is not None:  # the program's own object, whatever else shares its class
        return PythonRetriever(ref.bound)
    found = context.retrievers.get(ref)
    if found is None:
        found = context.retrievers[ref] = PythonRetriever(load_function(ref.path))
    return found


@dataclass(frozen=True)
class _Plan:
    """What running a graph needs of its structure, worked out once per graph (and again after
    its nodes or wires change; see `ProgramGraph.derived`): the nodes in dependency order, the
    wires into each, the outputs, and whether its steps form a chain."""

    order: tuple[Node, ...]
    incoming: dict[str, tuple[tuple[str, str, str], ...]]  # node -> (source, source field, field)
    outputs: tuple[tuple[str, str], ...]  # (output name, node id)
    one_at_a_time: bool


def _plan(graph: ProgramGraph) -> _Plan:
    def make() -> _Plan:
        order = tuple(graph.topological())
        incoming = {
            node.id: tuple((s, w.source_field, w.target_field) for s, w in graph.incoming(node.id))
            for node in order
        }
        outputs = tuple((n.name, n.id) for n in graph.outputs())
        return _Plan(order, incoming, outputs, _one_at_a_time(order, graph))

    return graph.derived("executor-plan", make)


def _one_at_a_time(order: tuple[Node, ...], graph: ProgramGraph) -> bool:
    """Whether no two steps could ever run at once (each step depends on the one before)."""
    steps = [n.id for n in order if n.calls_out]
    if len(steps) < 2:  # nothing to run beside: no need to build the networkx graph
        return True
    return all(nx.has_path(graph.nx, a, b) for a, b in itertools.pairwise(steps))


def _run_in_order(
    context: RunContext, graph: ProgramGraph, inputs: dict[str, Any], record: int | None = None
) -> dict[str, Any]:
    """A program whose steps form a chain, run in one thread: no event loop, no hand-offs. Once
    its record is dropped, no further step starts (the call in flight cannot be stopped)."""
    plan = _plan(graph)
    results: dict[str, dict[str, Any]] = {}
    for node in plan.order:
        stop_if_dropped()
        values = {field: results[source][out] for source, out, field in plan.incoming[node.id]}
        results[node.id] = _evaluate(context, graph, node, values, inputs, record)
    return {name: results[node_id]["value"] for name, node_id in plan.outputs}


async def _with_executor(context: RunContext) -> None:
    """LM calls run in the context's worker threads, made once and reused by every run."""
    if context.workers is None:
        workers = max(context.lm.max_concurrency, context.concurrency) + 2
        context.workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmc-call")
    loop = asyncio.get_running_loop()
    loop.set_default_executor(_Borrowed(context.workers))


class _Borrowed(ThreadPoolExecutor):
    """The context's pool, lent to one event loop: `asyncio.run` shuts its default executor
    down at the end, and this one must outlive the run."""

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool = pool

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def run(context: RunContext, graph: ProgramGraph, inputs: dict[str, Any]) -> dict[str, Any]:
    """The program's outputs for one set of (already typed) inputs."""
    if _plan(graph).one_at_a_time:
        return _run_in_order(context, graph, inputs)

    async def main() -> dict[str, Any]:
        await _with_executor(context)
        return await _Run(context, graph, None).outputs(inputs)

    return run_to_end(main)


def _forget(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def run_to_end(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run`, also from code that already runs an event loop (a notebook, say)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    return _on_another_thread(main)


def _on_another_thread(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(main())` on a thread of its own, stopped by Ctrl-C in the calling thread (a
    notebook's interrupt) as `asyncio.run` is by its own: its task is cancelled, which drops the
    records in flight without waiting for their LM calls. Waiting for the thread instead would
    run every record to its end, calls that hang included, before the interrupt came through."""
    tasks: Future[asyncio.Task[T]] = Future()

    async def published() -> T:
        task = asyncio.current_task()
        assert task is not None  # a coroutine that asyncio.run runs is its task's
        tasks.set_result(task)
        return await main()

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmc-run")
    done = worker.submit(asyncio.run, published())
    worker.shutdown(wait=False)  # the thread ends with the run
    try:
        return done.result()
    except KeyboardInterrupt:
        task = tasks.result()
        with contextlib.suppress(RuntimeError):  # its loop is closed: the run ended meanwhile
            task.get_loop().call_soon_threadsafe(task.cancel)
        wait([done])  # the run winding down: its records dropped, none waited for
        raise


@dataclass
class RecordResult:
    index: int
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    error: str | None = None
    reply: str | None = None
    seconds: float = 0.0  # wall time from its start to its end (other records ran meanwhile)


class RecordExecutor(Protocol):
    """Where a dataset's records run: in this process (`LocalExecutor`), or spread over the
    workers of a cluster (`lmc.runtime.ray_executor.RayExecutor`). Every kind is named in
    `lmc.plugins.EXECUTORS`; `lmc run --data`, `lmc eval` and a compile's candidate scores all
    come through `run_records`, so each kind serves them all."""

    def run_records(
        self,
        context: RunContext,
        graph: ProgramGraph,
        records: Iterable[dict[str, Any]],
        numbers: Iterable[int] | None,
    ) -> AsyncIterator[RecordResult]:
        """Each record's result, in input order, with a bounded number in flight: `records` is
        read as the results go out, never all at once."""
        ...

    def close(self) -> None:
        """Let go of what it holds (a cluster's workers); a later run starts them again."""
        ...


def run_records(
    context: RunContext,
    graph: ProgramGraph,
    records: Iterable[dict[str, Any]],
    numbers: Iterable[int] | None = None,
) -> AsyncIterator[RecordResult]:
    """Each record's result, in input order, on the context's executor (this process unless it
    names another). A record whose work fails (`RecordFailure`) is a result with its error;
    other errors stop the run. `numbers` are the records' indexes in their dataset (default
    0, 1, ...), for a run of some of its records."""
    executor = context.executor if context.executor is not None else LOCAL
    return executor.run_records(context, graph, records, numbers)


def run_record(
    context: RunContext, graph: ProgramGraph, index: int, inputs: dict[str, Any]
) -> RecordResult:
    """One record, start to end, in the calling thread: how a cluster's worker runs the records
    it is sent. A record whose work fails is a result with its error."""
    timed = _Timed(index, inputs)

    async def with_events() -> dict[str, Any]:
        await _with_executor(context)
        return await _Run(context, graph, index).outputs(inputs)

    try:
        if _plan(graph).one_at_a_time:
            outputs = _run_in_order(context, graph, inputs, index)
        else:
            outputs = run_to_end(with_events)
    except RecordFailure as failure:
        return timed.failed(failure)
    return timed.done(outputs)


class _Timed:
    """A record's result, with the wall time from its start to its end."""

    def __init__(self, index: int, inputs: dict[str, Any]) -> None:
        self.index, self.inputs = index, inputs
        self.started = time.perf_counter()

    def done(self, outputs: dict[str, Any]) -> RecordResult:
        return RecordResult(self.index, self.inputs, outputs, seconds=self._seconds())

    def failed(self, failure: RecordFailure) -> RecordResult:
        return RecordResult(
            self.index,
            self.inputs,
            error=str(failure),
            reply=failure.reply,
            seconds=self._seconds(),
        )

    def _seconds(self) -> float:
        return time.perf_counter() - self.started


class LocalExecutor:
    """Records run in this process: at most `context.concurrency` in flight, their LM calls and
    functions in the context's worker threads."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if address is not None or workers is not None:
            raise ExecutorOptionInvalid(
                "--ray-address and --workers are for a cluster: add --executor ray"
            )

    def close(self) -> None:
        pass

    async def run_records(
        self,
        context: RunContext,
        graph: ProgramGraph,
        records: Iterable[dict[str, Any]],
        numbers: Iterable[int] | None,
    ) -> AsyncIterator[RecordResult]:
        await _with_executor(context)
        window = max(1, context.concurrency)
        in_order = _plan(graph).one_at_a_time

        async def one(index: int, inputs: dict[str, Any]) -> RecordResult:
            timed = _Timed(index, inputs)
            # This task's own: the worker threads it starts inherit it.
            dropped = threading.Event()
            record_dropped.set(dropped)
            try:
                if in_order:
                    outputs = await asyncio.to_thread(_run_in_order, context, graph, inputs, index)
                else:
                    outputs = await _Run(context, graph, index).outputs(inputs)
            except RecordFailure as failure:
                return timed.failed(failure)
            except asyncio.CancelledError:
                # Its threads cannot be cancelled: tell them to make no further LM call.
                dropped.set()
                raise
            return timed.done(outputs)

        pending: list[asyncio.Task[RecordResult]] = []
        try:
            indexes = itertools.count() if numbers is None else iter(numbers)
            for index, inputs in zip(indexes, records, strict=False):
                pending.append(asyncio.ensure_future(one(index, inputs)))
                if len(pending) >= window:
                    yield await pending.pop(0)
            while pending:
                yield await pending.pop(0)
        finally:
            # Stopped early (an error, the budget, Ctrl-C): the records still in flight are
            # dropped, and their errors must not be reported again as "never retrieved".
            for task in pending:
                task.cancel()
                task.add_done_callback(_forget)


class ExecutorOptionInvalid(InputError):
    """An executor's option that does not fit it (a cluster address for the local one)."""


LOCAL = LocalExecutor()
