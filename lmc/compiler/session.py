"""`lmc.compile`: optimize a program against data and a metric, pass by pass, within a budget.

The same path serves `lmc compile` and Python. Every LM call goes through the runtime (cache,
budget, trace); the result is a new program with learned instructions and demos, and the log of
what each pass bought and cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lmc.ir.graph import ProgramGraph
from lmc.passes.base import CompileContext, Pass
from lmc.passes.manager import CompileResult, PassRecord, projection, run_pipeline
from lmc.passes.registry import DEFAULT_PIPELINE, parse_pipeline
from lmc.program import Program
from lmc.runtime.context import Budget, RunContext, configure, current_context
from lmc.runtime.data import Dataset, coerce, hash_records, split
from lmc.runtime.metrics import Metric, builtin, parse_metric


class BudgetTooSmall(Exception):
    """The pipeline's projected LM calls do not fit the budget; nothing was run."""

    def __init__(self, budget: int, stages: list[tuple[str, int]]):
        listed = ", ".join(f"{name} {calls}" for name, calls in stages)
        total = sum(calls for _, calls in stages)
        super().__init__(
            f"the pipeline may need up to {total} LM calls ({listed}), over the budget of "
            f"{budget}: raise --budget-calls, or give passes smaller options"
        )
        self.stages = stages


@dataclass
class Compiled:
    program: Program
    result: CompileResult
    stages: list[tuple[str, int]]
    train: Dataset
    dev: Dataset
    metric: Metric


def compile_program(
    program: Program,
    train: Dataset,
    metric: Metric,
    *,
    dev: Dataset | None = None,
    pipeline: str | list[Pass] = DEFAULT_PIPELINE,
    run: RunContext,
    teacher: RunContext | None = None,
    seed: int = 0,
    budget_calls: int | None = None,
    say: Callable[[str], None] = lambda message: None,
    on_record: Callable[[PassRecord, ProgramGraph], None] = lambda record, program: None,
    on_plan: Callable[[list[tuple[str, int]]], None] = lambda stages: None,
    done: list[PassRecord] | None = None,
    start: ProgramGraph | None = None,
) -> Compiled:
    """Run the pipeline on `program`. Without `dev`, train is split by `seed`. The budget is
    checked against the pipeline's projected calls before any LM call, and never exceeded."""
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    if dev is None:
        train, dev = split(train, seed)
    teacher = teacher or run
    context = CompileContext(run, teacher, train, dev, metric, seed, say)
    graph = start if start is not None else program.ir
    stages = projection(graph, passes, context)
    on_plan(stages)
    if budget_calls is not None and sum(calls for _, calls in stages) > budget_calls:
        raise BudgetTooSmall(budget_calls, stages)
    # The budget binds this compile's calls only; the contexts get their own limits back after.
    earlier = run.budget, teacher.budget
    run.budget = teacher.budget = Budget(budget_calls)
    try:
        result = run_pipeline(graph, passes, context, on_record=on_record, done=done)
    finally:
        run.budget, teacher.budget = earlier
    return Compiled(Program(result.program, program.source), result, stages, train, dev, metric)


def as_metric(metric: str | Metric | Callable[..., Any], program: Program) -> Metric:
    """A metric from a spec (`exact_match(answer)`, `pkg.mod:fn`), a Metric, or a function."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return parse_metric(metric)
    function = metric

    def score(example: Mapping[str, Any], prediction: Mapping[str, Any]) -> float:
        from lmc.builder.modules import Prediction
        from lmc.runtime.metrics import _Record

        return float(function(_Record(example), Prediction(**prediction)))

    return Metric(getattr(function, "__name__", "metric"), None, score)


def as_dataset(records: Iterable[Any], program: Program, name: str) -> Dataset:
    """Examples from dicts, or from DSPy-style objects with `toDict()`."""
    examples = []
    for record in records:
        if hasattr(record, "toDict"):
            record = record.toDict()
        examples.append(dict(record))
    inputs = tuple(
        coerce(program.inputs, e, f"{name} example {i + 1}") for i, e in enumerate(examples)
    )
    return Dataset(name, tuple(examples), inputs, hash_records(examples))


def compile(
    program: Program | Any,
    *,
    trainset: Iterable[Any],
    metric: str | Metric | Callable[..., Any] | None = None,
    devset: Iterable[Any] | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    lm: str | RunContext | None = None,
    teacher: str | RunContext | None = None,
    seed: int = 0,
    budget_calls: int | None = None,
) -> Program:
    """Optimize `program` (a Program, or an lmc.Module to build) and return the compiled one."""
    if not isinstance(program, Program):
        from lmc.builder.build import build

        program = build(program)
    if metric is None:
        declared = program.metric
        if declared is None:
            raise ValueError("lmc.compile needs a metric: metric='exact_match(answer)'")
        metric = builtin(declared.name, declared.field)
    run = lm if isinstance(lm, RunContext) else (configure(lm) if lm else current_context())
    teacher_context = (
        teacher if isinstance(teacher, RunContext) else (configure(teacher) if teacher else None)
    )
    compiled = compile_program(
        program,
        as_dataset(trainset, program, "train"),
        as_metric(metric, program),
        dev=as_dataset(devset, program, "dev") if devset is not None else None,
        pipeline=pipeline,
        run=run,
        teacher=teacher_context,
        seed=seed,
        budget_calls=budget_calls,
    )
    return compiled.program


class BootstrapFewShot:
    """DSPy's `BootstrapFewShot(metric=...).compile(program, trainset=...)`, on lmc's passes."""

    def __init__(
        self,
        metric: str | Metric | Callable[..., Any],
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        **_: Any,
    ) -> None:
        self.metric = metric
        self.max_demos = max_bootstrapped_demos
        self.max_train = max_labeled_demos

    def compile(
        self,
        student: Program | Any,
        *,
        trainset: Iterable[Any],
        teacher: Any = None,
        valset: Iterable[Any] | None = None,
    ) -> Program:
        pipeline = f"bootstrap-demos{{max_demos={self.max_demos},max_train={self.max_train}}}"
        return compile(
            student, trainset=trainset, devset=valset, metric=self.metric, pipeline=pipeline
        )
