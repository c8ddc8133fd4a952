"""Score a program on examples with a metric, through the runtime (cache, budget, trace)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lmc.backends.base import LMResponse
from lmc.errors import USER_CODE_ERRORS, what_it_raised
from lmc.ir.graph import ProgramGraph
from lmc.runtime.context import RunContext
from lmc.runtime.executor import run_records, run_to_end
from lmc.runtime.metrics import Metric, MetricError, Trace


@dataclass(frozen=True)
class StepCall:
    """What one step read and wrote for one example."""

    step: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class ExampleCost:
    """What one example's run cost: for the slowest and costliest examples of an evaluation."""

    seconds: float = 0.0  # wall time from its start to its end (other examples ran meanwhile)
    calls: int = 0  # LM calls made, cache hits apart
    cached: int = 0
    tokens: int = 0  # prompt and completion tokens, cache hits included

    def add(self, response: LMResponse) -> None:
        self.cached += int(response.cached)
        self.calls += int(not response.cached)
        self.tokens += response.prompt_tokens + response.completion_tokens


@dataclass
class Evaluation:
    scores: list[float]
    predictions: list[dict[str, Any] | None]
    errors: list[str | None]
    calls: list[list[StepCall]] = field(default_factory=list)
    costs: list[ExampleCost] = field(default_factory=list)  # by example; empty when not measured
    # The examples the program answered but the metric failed on (raised, or returned no
    # number): each scores 0 with the metric's error in `errors`, its prediction kept.
    metric_failed: list[int] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The mean score, 0 to 1; a failed example scores 0."""
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


def evaluate(
    context: RunContext,
    graph: ProgramGraph,
    examples: Sequence[dict[str, Any]],
    inputs: Sequence[dict[str, Any]],
    metric: Metric,
    *,
    capture: bool = False,
) -> Evaluation:
    """Run every example (`inputs[i]` are the typed program inputs of `examples[i]`) and score
    it; with `capture`, keep each example's step calls (for bootstrapping demos)."""
    seen: dict[int, list[StepCall]] = defaultdict(list)
    lock = threading.Lock()

    def observe(
        record: int | None, step: str, values: dict[str, Any], outputs: dict[str, Any]
    ) -> None:
        if record is not None:
            with lock:
                seen[record].append(StepCall(step, dict(values), dict(outputs)))

    costs: dict[int, ExampleCost] = defaultdict(ExampleCost)
    outer = context.on_call

    def count(record: int | None, response: LMResponse) -> None:
        if outer is not None:
            outer(record, response)
        if record is not None:
            with lock:
                costs[record].add(response)

    running = context.derived(on_call=count, on_step=observe if capture else context.on_step)

    async def collect() -> Evaluation:
        result = Evaluation([], [], [])
        async for record in run_records(running, graph, list(inputs)):
            example = examples[record.index]
            with lock:
                costs[record.index].seconds = record.seconds
            if record.outputs is None:
                result.scores.append(0.0)
                result.predictions.append(None)
                result.errors.append(record.error)
            else:
                trace = _as_trace(seen[record.index]) if capture else None
                score, failure = _score(metric, example, record.outputs, trace)
                result.scores.append(score)
                result.predictions.append(record.outputs)
                result.errors.append(failure)
                if failure is not None:
                    result.metric_failed.append(record.index)
        result.calls = [seen.get(i, []) for i in range(len(examples))]
        result.costs = [costs[i] for i in range(len(examples))]
        return result

    return run_to_end(collect)


def _as_trace(calls: list[StepCall]) -> Trace:
    with_copies = [(c.step, dict(c.inputs), dict(c.outputs)) for c in calls]
    return with_copies


def _score(
    metric: Metric,
    example: dict[str, Any],
    outputs: dict[str, Any],
    trace: Trace | None = None,
) -> tuple[float, str | None]:
    """The example's score, or 0 and why the metric failed on it: a metric that fails on one
    example fails that example, as a failed step would, and the others are still scored (the
    LM calls behind them are paid for)."""
    try:
        return metric.score(example, outputs, trace), None
    except MetricError as error:
        return 0.0, str(error)
    except USER_CODE_ERRORS as error:  # a user's Python metric may raise anything
        return 0.0, f"metric {metric.label} {what_it_raised(error)}"
