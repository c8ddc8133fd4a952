"""`lmc compile`: optimize a program against data and a metric; write a compiled artifact."""

from __future__ import annotations

import argparse
import shlex
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from lmc.cli.errors import EXIT_OK, UsageError
from lmc.cli.loading import load_program, open_corpora
from lmc.cli.running import FilePath, Output, check_outputs, program_reads, run_context
from lmc.compiler.artifact import CompileInfo
from lmc.compiler.program import Program
from lmc.compiler.session import Compiled, compile_program, gain_text, pass_line, plan_line
from lmc.passes.base import Pass
from lmc.passes.pipeline import parse_pipeline
from lmc.passes.record import PassRecord
from lmc.runtime.context import RunContext
from lmc.runtime.data import Dataset, load_dataset
from lmc.runtime.functions import import_callables
from lmc.runtime.metrics import Metric, MetricError, builtin, parse_metric
from lmc.runtime.progress import WorkProgress
from lmc.strings import printable


def run(args: argparse.Namespace) -> int:
    program = load_program(args.program_file, args.program, args.corpus or [])
    # The artifact is written after every LM call is spent: a path it cannot go to stops now.
    target = Path(args.output or f"{program.name}.compiled.json")
    outputs = [
        Output("-o", target, "the artifact", default=args.output is None),
        Output("--report", args.report, "the report"),
    ]
    check_outputs(outputs, training_reads(args, program))
    open_corpora(program)
    inputs = compile_inputs(args, program)
    metric = inputs[0]
    import_callables(program.ir)
    student, teacher = compile_contexts(args)
    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    started = time.perf_counter()
    calls = WorkProgress(err, f"compile {program.name}", 0, "LM calls")
    for context in [student] if teacher is student else [student, teacher]:
        context.on_call = lambda record, response: calls.advance()
    shown = _PassTable(err, metric.label, args.budget_calls, calls)
    with shown.live():
        compiled = compile_with_options(
            args,
            program,
            inputs,
            student,
            teacher,
            say=lambda message: err.print(f"  {printable(message)}", style="dim"),
            on_record=shown.add,
            on_plan=shown.plan,
        )
    compiled.program.compiled = replace(
        compiled.program.compiled or CompileInfo(), command=shlex.join(args.command_line)
    )
    try:
        compiled.program.save(target)
    except OSError as error:
        raise UsageError(f"{target}: cannot write it ({error.strerror})") from None
    if args.report:
        from lmc.cli.report import write_compile_report

        err.print(
            f"wrote {write_compile_report(compiled.program, args.report, source=str(target))}"
        )
    result = compiled.result
    total_calls = student.stats.total().calls + (
        teacher.stats.total().calls if teacher is not student else 0
    )
    print(
        f"wrote {target}: dev {metric.label} {result.baseline:.3f} -> {result.final:.3f} "
        f"on {len(compiled.dev)} examples, {total_calls} LM calls, "
        f"{time.perf_counter() - started:.0f}s"
    )
    _note_corpora_elsewhere(err, compiled.program, target)
    return EXIT_OK


def _note_corpora_elsewhere(err: Console, program: Program, artifact: Path) -> None:
    """An artifact reads only corpora in its folder unless a run names them: say so now, not
    when someone runs it."""
    from lmc.compiler.artifact import ArtifactError, with_corpora

    try:
        with_corpora(program.ir, {}, str(artifact))
    except ArtifactError as outside:
        err.print(f"note: {outside}", style="yellow")


def training_reads(args: argparse.Namespace, program: Program) -> dict[str, FilePath | None]:
    """The files a compile (or `lmc opt --train`) reads, for `check_outputs`."""
    return {
        "the --train file": args.train,
        "the --dev file": args.dev,
        **program_reads(args.program_file, program),
    }


def compile_contexts(args: argparse.Namespace) -> tuple[RunContext, RunContext]:
    """The student's run context, and the teacher's (the student's unless --teacher-lm)."""
    student = run_context(args)
    return student, (run_context(args, lm=args.teacher_lm) if args.teacher_lm else student)


def compile_with_options(
    args: argparse.Namespace,
    program: Program,
    inputs: tuple[Metric, list[Pass] | None, Dataset, Dataset | None],
    student: RunContext,
    teacher: RunContext,
    **report: Any,
) -> Compiled:
    """`compile_program` as the options say (seed, budget, resume); `report` is how progress
    is shown (`say`, `on_record`, `on_plan`)."""
    metric, passes, train, dev = inputs
    return compile_program(
        program,
        train,
        metric,
        dev=dev,
        pipeline=passes,
        run=student,
        teacher=teacher,
        seed=args.seed,
        budget_calls=args.budget_calls,
        resume=getattr(args, "resume", False),
        **report,
    )


def compile_inputs(
    args: argparse.Namespace, program: Program
) -> tuple[Metric, list[Pass] | None, Dataset, Dataset | None]:
    """The metric, passes and datasets the options name, all checked before any LM call.
    No passes (None) means the default pipeline, fitted to the budget."""
    metric = _metric(args, program)
    # `-p ""` is a mistake, not a way to ask for the default (which is fitted to the budget).
    passes = parse_pipeline(args.pipeline) if args.pipeline is not None else None
    if metric.field and metric.field not in {f.name for f in program.outputs}:
        raise MetricError(f"metric {metric.label}: the program has no output '{metric.field}'")
    expected = [metric.field] if metric.field else []
    train = load_dataset(Path(args.train), program.inputs, expected)
    dev = load_dataset(Path(args.dev), program.inputs, expected) if args.dev else None
    return metric, passes, train, dev


class _PassTable:
    """The plan, then one row per finished pass: a live table on a terminal, else lines."""

    def __init__(self, err: Console, metric: str, budget: int | None, calls: WorkProgress):
        self.err, self.metric, self.budget, self.calls = err, metric, budget, calls
        self.table = Table(
            "pass",
            "dev before",
            "dev after",
            "gain [90%]",
            "LM calls",
            "cached",
            "tokens",
            "seconds",
            "calls/run",
            title="compile",
        )

    def live(self) -> AbstractContextManager[Any]:
        """The table and the LM calls' progress, live on a terminal (elsewhere each prints
        its own lines)."""
        if self.err.is_terminal:
            shown = Group(self.table, self.calls)
            return Live(shown, console=self.err, refresh_per_second=2)
        return nullcontext()

    def plan(self, stages: list[tuple[str, int]]) -> None:
        self.err.print(plan_line(stages, self.budget))
        # Progress is counted against the projection: at most that many calls.
        self.calls.expect(sum(calls for _, calls in stages))

    def add(self, record: PassRecord) -> None:
        self.table.add_row(
            record.name,
            f"{record.metric_before:.3f}",
            f"{record.metric_after:.3f}",
            gain_text(record),
            str(record.calls),
            str(record.cached),
            str(record.prompt_tokens + record.completion_tokens),
            f"{record.seconds:.1f}",
            str(record.calls_per_run),
        )
        if self.err.is_terminal:
            return  # the live table shows it
        self.err.print(pass_line(record, self.metric))


def _metric(args: argparse.Namespace, program: Program) -> Metric:
    if args.metric is not None:  # `--metric ""` is a mistake, not a way to ask for the default
        return parse_metric(args.metric)
    declared = program.metric
    if declared is None:
        raise UsageError("no metric: pass --metric NAME(FIELD) or declare one in the file")
    return builtin(declared.name, declared.field)
