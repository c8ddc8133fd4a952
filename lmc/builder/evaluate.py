"""`lmc.Evaluate`: DSPy's evaluator, on lmc's runtime (cache, concurrency, trace).

`lmc.Evaluate(devset=..., metric=..., num_threads=8)(program)` runs every example and returns
an `EvaluationResult`: `score` as DSPy gives it (a percentage), and `results`, one
`(example, prediction, score)` per example, in order; an example whose run failed has prediction
None and scores 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmc.builder.build import build
from lmc.builder.optimize import Records, as_dataset, as_metric
from lmc.compiler.program import Program
from lmc.runtime.context import RunContext, current_context
from lmc.runtime.evaluate import Evaluation, evaluate
from lmc.runtime.metrics import Metric
from lmc.runtime.prediction import Example, Prediction
from lmc.runtime.progress import WorkProgress, counting


@dataclass(frozen=True)
class EvaluationResult:
    score: float  # percent, as DSPy reports it
    results: list[tuple[Example, Prediction | None, float]]

    def __float__(self) -> float:
        return self.score


class Evaluate:
    def __init__(
        self,
        *,
        devset: Records,
        metric: str | Metric | Callable[..., Any] | None = None,
        num_threads: int | None = None,
        display_progress: bool = False,
        display_table: bool | int = False,
        provide_traceback: bool | None = None,
        failure_score: float = 0.0,
    ) -> None:
        # DSPy's options that change nothing here (lmc reports failures as results, never
        # tracebacks) are accepted so that ported code runs; an unknown one is a TypeError.
        if failure_score != 0.0:
            raise ValueError("lmc scores a failed example 0; failure_score must be 0.0")
        self.devset = devset if isinstance(devset, str | os.PathLike) else list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress

    def __call__(
        self,
        program: Program | Any,
        *,
        metric: str | Metric | Callable[..., Any] | None = None,
        devset: Records | None = None,
        context: RunContext | None = None,
    ) -> EvaluationResult:
        if not isinstance(program, Program):
            program = build(program)
        chosen = metric or self.metric or _declared(program)
        scorer = as_metric(chosen, program)
        given = devset if devset is not None else self.devset
        if not isinstance(given, str | os.PathLike):
            given = list(given)  # read twice: as the dataset, and as the results' examples
        data = as_dataset(given, program, "dev", finite=False)  # scored, never saved
        examples = data.examples if isinstance(given, str | os.PathLike) else given
        run = context or current_context()
        if self.num_threads is not None:
            run = run.derived(concurrency=max(1, self.num_threads))
        if self.display_progress:
            result = _with_progress(run, program, data.examples, data.inputs, scorer)
        else:
            result = evaluate(run, program.ir, data.examples, data.inputs, scorer)
        rows = [
            (
                example if isinstance(example, Example) else Example(dict(data.examples[i])),
                Prediction(**predicted) if predicted is not None else None,
                score,
            )
            for i, (example, predicted, score) in enumerate(
                zip(examples, result.predictions, result.scores, strict=True)
            )
        ]
        return EvaluationResult(round(100 * result.score, 2), rows)


def _with_progress(
    run: RunContext,
    program: Program,
    examples: tuple[dict[str, Any], ...],
    inputs: tuple[dict[str, Any], ...],
    metric: Metric,
) -> Evaluation:
    """The evaluation with the command line's progress bar on stderr (on a terminal)."""
    from rich.console import Console

    progress = WorkProgress(
        Console(stderr=True), f"evaluate {program.name}", len(examples), "examples"
    )
    with progress:
        counted = counting(metric, progress.advance)
        return evaluate(run, program.ir, examples, inputs, counted)


def _declared(program: Program) -> str:
    if program.metric is None:
        raise TypeError("Evaluate needs a metric: lmc.Evaluate(devset=..., metric=...)")
    return f"{program.metric.name}({program.metric.field})"
