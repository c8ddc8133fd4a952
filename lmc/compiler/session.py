"""`lmc.compile`: optimize a program against data and a metric, pass by pass, within a budget.

The same path serves `lmc compile` and Python. Every LM call goes through the runtime (cache,
budget, trace); the result is a new program with learned instructions and demos, and the log of
what each pass bought and cost.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lmc.compiler import checkpoint
from lmc.compiler.artifact import CompileInfo, DevMiss
from lmc.compiler.program import Program
from lmc.errors import InputError
from lmc.files import DataError
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import print_program
from lmc.passes.base import CompileContext, Pass
from lmc.passes.budget import default_pipeline, measured_overrun, projected
from lmc.passes.manager import (
    CompileResult,
    options_of,
    projection,
    run_pipeline,
    verify_between,
)
from lmc.passes.pipeline import parse_pipeline
from lmc.passes.record import PassRecord
from lmc.runtime.context import Budget, RunContext
from lmc.runtime.data import Dataset, split
from lmc.runtime.evaluate import Evaluation
from lmc.runtime.metrics import Metric

# How many dev examples the program gets wrong an artifact keeps, for the report to show.
MISSES_KEPT = 8


class BudgetTooSmall(InputError):
    """The pipeline's projected LM calls do not fit the budget; nothing was run."""

    def __init__(self, budget: int, stages: list[tuple[str, int]], *, fitted: bool = False):
        listed = ", ".join(f"{name} {calls}" for name, calls in stages)
        total = sum(calls for _, calls in stages)
        what = "even the leanest default pipeline" if fitted else "the pipeline"
        fix = "or a smaller --dev" if fitted else "or give passes smaller options"
        super().__init__(
            f"{what} may need up to {total} LM calls ({listed}), over the budget of "
            f"{budget}: raise --budget-calls, {fix}"
        )
        self.stages = stages


def gain_text(record: PassRecord) -> str:
    """The pass's dev gain with its 90% paired interval, `+0.233 [+0.100, +0.367]`, or `-`."""
    if record.gain is None:
        return "-"
    mean, low, high = record.gain
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def pass_line(record: PassRecord, metric: str) -> str:
    """What one pass of a compile bought and cost, in one line."""
    gain = f" (gain {gain_text(record)})" if record.gain is not None else ""
    return (
        f"{record.name}: dev {metric} {record.metric_before:.3f} -> "
        f"{record.metric_after:.3f}{gain}, {record.calls} LM calls ({record.cached} cached), "
        f"{record.prompt_tokens + record.completion_tokens} tokens, "
        f"{record.seconds:.1f}s"
    )


def plan_line(stages: list[tuple[str, int]], budget: int | None) -> str:
    """The LM calls each stage of a compile may make, and the budget they must fit."""
    total = sum(calls for _, calls in stages)
    listed = ", ".join(f"{name} ≤{calls}" for name, calls in stages)
    within = f" (budget {budget})" if budget is not None else ""
    return f"projected LM calls: {listed}; at most {total}{within}"


@dataclass
class Compiled:
    """A finished compile: the program (carrying its `CompileInfo`) and what it was made from."""

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
    pipeline: str | list[Pass] | None = None,
    run: RunContext,
    teacher: RunContext | None = None,
    seed: int = 0,
    budget_calls: int | None = None,
    resume: bool = False,
    say: Callable[[str], None] = lambda message: None,
    on_record: Callable[[PassRecord], None] = lambda record: None,
    on_plan: Callable[[list[tuple[str, int]]], None] = lambda stages: None,
) -> Compiled:
    """Run the pipeline on `program`. Without `dev`, train is split by `seed`. Without a
    pipeline, the default is fitted to the budget (`passes/budget.py`); a pipeline given is
    checked against the budget before any LM call. The budget is never exceeded.

    After every pass the program and log are checkpointed; with `resume`, a compile of the same
    program, data, pipeline, metric, seed and models goes on after the last finished pass (every
    LM call already made comes from the cache either way). `on_record` sees the record of each
    pass this call runs.
    """
    for role, data in (("train", train), ("dev", dev)):
        if data is not None and not len(data):
            # Nothing could be measured: every candidate would score 0 on no examples.
            raise DataError(f"the {role} data has no examples; give at least one record")
    if dev is None:
        train, dev = split(train, seed)
    context = CompileContext(run, teacher or run, train, dev, metric, seed, say)
    given = parse_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    verify_between(program.ir, "before", given[0].name if given else "compiling")
    saved_at = _checkpoint_path(program.ir, given, budget_calls, context)
    with _budget(context, budget_calls) as budget:
        latest = _start(program.ir, saved_at, resume, say, budgeted=budget_calls is not None)
        budget.count(latest.calls)

        def keep(record: PassRecord, program_after: ProgramGraph) -> None:
            nonlocal latest
            used = budget.used
            latest = checkpoint.Saved(program_after, [*latest.passes, record], used, used)
            checkpoint.save(saved_at, latest)
            on_record(record)

        try:
            passes, overrun = _pipeline(program.ir, given, context, budget_calls)
            latest = _matching(latest, program.ir, passes, say)
            left = _still_to_run(latest.program, passes, len(latest.passes), context)
            stages = [(name, math.ceil(overrun * calls)) for name, calls in left]
            on_plan(stages)
            # A fitted default has been checked already; once a repair-prone model makes its
            # leanest form overrun, the budget stops the last pass instead.
            if given is not None and budget_calls is not None:
                _check_fits(budget_calls, latest.finished_calls, stages)
            result = run_pipeline(
                latest.program, passes, context, on_record=keep, done=list(latest.passes)
            )
        except BaseException:
            # Interrupted or failed: a resumed compile gets the calls made so far from the cache
            # for free, so its budget must count them. A compile that had done nothing leaves
            # the checkpoint of an earlier one alone.
            if latest.passes or budget.used:
                with suppress(OSError):  # what stopped the compile is the error to show
                    checkpoint.save(saved_at, latest._replace(calls=budget.used))
            raise
    saved_at.unlink(missing_ok=True)
    info = CompileInfo(
        misses=dev_misses(context.known_score(result.program), dev, metric),
        lm=_portable(run.model),
        api_base=run.model_spec.api_base if run.model_spec is not None else None,
        backend=run.backend.name,
        datasets={"train": train.sha256, "dev": dev.sha256},
        metric=metric.to_json(),
        passes=tuple(result.records),
    )
    return Compiled(Program(result.program, info), result, stages, train, dev, metric)


def _portable(model: str | None) -> str | None:
    """The model as an artifact records it: a model file (`local:models/x.gguf`) by its absolute
    path, so the artifact runs on it from any folder."""
    if model is None or not model.startswith("local:"):
        return model
    return "local:" + os.path.abspath(model.removeprefix("local:"))


def _still_to_run(
    graph: ProgramGraph, passes: list[Pass], finished: int, context: CompileContext
) -> list[tuple[str, int]]:
    """The most LM calls each stage left may make; a resumed compile that had finished a pass
    has its baseline score already."""
    if not finished:
        return projection(graph, passes, context)
    return projection(graph, passes[finished:], context)[1:]


def _fitted_default(
    program: ProgramGraph, context: CompileContext, budget: int | None
) -> tuple[list[Pass], float]:
    """The default pipeline fitted to `budget`, and how many requests a projected call took on
    dev. Refused before any LM call when even its leanest form cannot fit; otherwise fitted
    again on the baseline's measured calls (`passes/budget.py`)."""
    chosen, passes = default_pipeline(program, context, budget)
    if budget is None:
        context.say(f"the default pipeline: {chosen}")
        return passes, 1.0
    if projected(program, passes, context) > budget:
        raise BudgetTooSmall(budget, projection(program, passes, context), fitted=True)
    overrun = measured_overrun(program, context.score(program))  # run_pipeline reuses the score
    if overrun > 1.0:
        chosen, passes = default_pipeline(program, context, budget, overrun)
        context.say(
            f"the baseline made {overrun:.2f} LM requests per projected call on dev (repairs); "
            f"the default pipeline to fit {budget} LM calls at that rate: {chosen}"
        )
    else:
        context.say(f"the default pipeline to fit {budget} LM calls: {chosen}")
    return passes, overrun


def dev_misses(
    scored: Evaluation | None, dev: Dataset, metric: Metric, most: int = MISSES_KEPT
) -> tuple[DevMiss, ...]:
    """The first `most` dev examples the program scored below full marks on, from a score the
    compile already has (none without one: the artifact records them, it spends no call)."""
    if scored is None:
        return ()
    found: list[DevMiss] = []
    for index, (score, predicted, error) in enumerate(
        zip(scored.scores, scored.predictions, scored.errors, strict=True)
    ):
        if score >= 1.0 or len(found) >= most:
            continue
        example, names = dev.examples[index], set(dev.inputs[index])
        inputs = {k: v for k, v in example.items() if k in names}
        wanted = [metric.field] if metric.field else [k for k in example if k not in names]
        expected = {k: example[k] for k in wanted if k in example}
        found.append(DevMiss(dev.number(index), inputs, expected, predicted, score, error))
    return tuple(found)


def _checkpoint_path(
    graph: ProgramGraph, given: list[Pass] | None, budget: int | None, context: CompileContext
) -> Path:
    """Where a compile of exactly these inputs keeps its progress. The default pipeline is
    known by the budget it is fitted to, so its checkpoint is found before the fit spends calls
    scoring the baseline."""
    pipeline = ("default", budget) if given is None else [(p.name, options_of(p)) for p in given]
    return checkpoint.checkpoint_path(
        program=print_program(graph),
        train=context.train.sha256,
        dev=context.dev.sha256,
        pipeline=pipeline,
        metric=(context.metric.label, context.metric.code),
        seed=context.seed,
        lm=context.run.lm.identity,
        teacher=context.teacher.lm.identity,
        backend=context.run.backend.name,
    )


def _start(
    graph: ProgramGraph,
    saved_at: Path,
    resume: bool,
    say: Callable[[str], None],
    *,
    budgeted: bool,
) -> checkpoint.Saved:
    """The program to start from, the passes already done and the LM calls already spent:
    from the checkpoint when resuming and there is one, else the program as given."""
    fresh = checkpoint.Saved(graph, [], 0, 0)
    if not resume:
        return fresh
    resumed = checkpoint.load(saved_at)
    if resumed is None or not (resumed.passes or resumed.calls):
        say("no checkpoint of this compile: starting from the beginning")
        return fresh
    after = ", ".join(r.name for r in resumed.passes) or "no finished pass"
    counted = ", counted in the budget" if budgeted else ""
    say(f"resuming after {after} ({resumed.calls} LM calls made before{counted})")
    # The checkpoint is text: the retriever objects the program was built with come back by
    # index name (passes never rename indexes).
    resumed.program.indexes = {
        name: replace(ref, bound=graph.indexes[name].bound) if name in graph.indexes else ref
        for name, ref in resumed.program.indexes.items()
    }
    return resumed


def _pipeline(
    program: ProgramGraph, given: list[Pass] | None, context: CompileContext, budget: int | None
) -> tuple[list[Pass], float]:
    """The passes to run, and how many requests a projected call takes (a fitted default
    measures it on the baseline)."""
    if given is None:
        return _fitted_default(program, context, budget)
    return given, 1.0


def _matching(
    saved: checkpoint.Saved, program: ProgramGraph, passes: list[Pass], say: Callable[[str], None]
) -> checkpoint.Saved:
    """The checkpoint, when its finished passes begin `passes`. A default pipeline is keyed by
    its budget, not its passes, and is fitted again on resuming: should the fit differ (another
    lmc, an emptied cache), the compile starts over from `program`, its calls still counted."""
    finished = [_pass_key(r.name, r.options) for r in saved.passes]
    wanted = [_pass_key(p.name, options_of(p)) for p in passes[: len(finished)]]
    if finished == wanted:
        return saved
    say("the default pipeline is fitted otherwise now: starting from the program as given")
    return checkpoint.Saved(program, [], saved.calls, saved.calls)


def _pass_key(name: str, options: dict[str, Any]) -> str:
    """A pass and its options as text, the same whether they came from JSON or from code."""
    return json.dumps([name, options], sort_keys=True, default=str)


def _check_fits(budget: int, spent: int, stages: list[tuple[str, int]]) -> None:
    """Refuse a pipeline whose stages left may overrun what the budget has after `spent`, the
    calls made up to the last finished pass (those of an unfinished one are replayed free)."""
    if spent + sum(calls for _, calls in stages) > budget:
        before = [("spent by the finished passes", spent)] if spent else []
        raise BudgetTooSmall(budget, before + stages)


@contextmanager
def _budget(context: CompileContext, calls: int | None) -> Iterator[Budget]:
    """The budget binds this compile's calls only (the teacher's too); the contexts get their own
    limits back."""
    run, teacher = context.run, context.teacher
    earlier = run.budget, teacher.budget
    run.budget = teacher.budget = budget = Budget(calls)
    try:
        yield budget
    finally:
        run.budget, teacher.budget = earlier
