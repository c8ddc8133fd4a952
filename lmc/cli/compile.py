"""`lmc compile`: optimize a program against data and a metric; write a compiled artifact."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from lmc.cli.run import RunFailed, RunUsageError, _context
from lmc.cli.run import _failures as run_failures
from lmc.passes.record import PassRecord
from lmc.program import Program

DEFAULT_PIPELINE_HELP = "dead-steps,dedupe-steps,bootstrap-demos,prune-demos"


def add_command(commands: Any, load_program: Callable[[str, str | None], Program]) -> None:
    compile_ = commands.add_parser("compile", help="optimize a program against data and a metric")
    compile_.add_argument("program_file", metavar="PROGRAM.lmp")
    compile_.add_argument("--train", required=True, metavar="TRAIN.jsonl")
    compile_.add_argument("--dev", metavar="DEV.jsonl", help="default: part of --train (by --seed)")
    compile_.add_argument("--program", help="which program of the file")
    compile_.add_argument(
        "--metric", help="NAME(FIELD) or package.module:function (default: the file's metric)"
    )
    compile_.add_argument("-p", "--pipeline", help=f"passes (default: {DEFAULT_PIPELINE_HELP})")
    compile_.add_argument("--budget-calls", type=int, help="never make more LM calls than this")
    compile_.add_argument("--lm", help="model to compile for (default: local)")
    compile_.add_argument("--teacher-lm", help="model that runs the program for demos")
    compile_.add_argument("--api-base", help="address of a served model")
    compile_.add_argument("--backend", default="json")
    compile_.add_argument("--seed", type=int, default=0)
    compile_.add_argument("--concurrency", type=int, default=4)
    compile_.add_argument("-o", "--output", help="artifact to write (default: NAME.compiled.json)")
    compile_.add_argument(
        "--resume",
        action="store_true",
        help="go on after an interrupted compile (completed LM calls come from the cache)",
    )
    compile_.set_defaults(handler=lambda args, out: cmd_compile(args, out, load_program))


def cmd_compile(
    args: argparse.Namespace, out: Console, load_program: Callable[[str, str | None], Program]
) -> int:
    from lmc.compiler.session import BudgetTooSmall, compile_program
    from lmc.runtime.metrics import MetricError

    program = load_program(args.program_file, args.program)
    metric, passes, train, dev = _inputs(args, program)
    run = _context(args)
    teacher = _context(args, lm=args.teacher_lm) if args.teacher_lm else run
    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    started = time.perf_counter()
    shown = _PassTable(err, metric.label, args.budget_calls)
    try:
        with shown.live():
            compiled = compile_program(
                program,
                train,
                metric,
                dev=dev,
                pipeline=passes,
                run=run,
                teacher=teacher,
                seed=args.seed,
                budget_calls=args.budget_calls,
                resume=args.resume,
                say=lambda message: err.print(f"  {message}", style="dim"),
                on_record=shown.add,
                on_plan=shown.plan,
            )
    except (BudgetTooSmall, MetricError) as error:
        raise RunUsageError(str(error)) from None
    except _failures() as error:
        raise RunFailed(str(error)) from None
    target = Path(args.output or f"{program.name}.compiled.json")
    try:
        compiled.program.save(target)
    except OSError as error:
        raise RunUsageError(f"{target}: cannot write it ({error.strerror})") from None
    result = compiled.result
    total_calls = run.stats.total().calls + (
        teacher.stats.total().calls if teacher is not run else 0
    )
    out.print(
        f"wrote {target}: dev {metric.label} {result.baseline:.3f} -> {result.final:.3f} "
        f"on {len(compiled.dev)} examples, {total_calls} LM calls, "
        f"{time.perf_counter() - started:.0f}s"
    )
    return 0


def _inputs(args: argparse.Namespace, program: Program) -> tuple[Any, Any, Any, Any]:
    """The metric, passes and datasets the options name, all checked before any LM call."""
    from lmc.passes.pipeline import DEFAULT_PIPELINE, PipelineError, parse_pipeline
    from lmc.runtime.data import DataError, load_dataset
    from lmc.runtime.metrics import MetricError

    try:
        metric = _metric(args, program)
        passes = parse_pipeline(args.pipeline or DEFAULT_PIPELINE)
        if metric.field and metric.field not in {f.name for f in program.outputs}:
            raise MetricError(f"metric {metric.label}: the program has no output '{metric.field}'")
        expected = [metric.field] if metric.field else []
        train = load_dataset(Path(args.train), program.inputs, expected)
        dev = load_dataset(Path(args.dev), program.inputs, expected) if args.dev else None
    except (MetricError, PipelineError, DataError) as error:
        raise RunUsageError(str(error)) from None
    return metric, passes, train, dev


class _PassTable:
    """The plan, then one row per finished pass: a live table on a terminal, else lines."""

    def __init__(self, err: Console, metric: str, budget: int | None):
        self.err, self.metric, self.budget = err, metric, budget
        self.table = Table(
            "pass",
            "dev before",
            "dev after",
            "LM calls",
            "cached",
            "tokens",
            "seconds",
            "calls/run",
            title="compile",
        )

    def live(self) -> AbstractContextManager[Any]:
        if self.err.is_terminal:
            return Live(self.table, console=self.err, refresh_per_second=2)
        return nullcontext()

    def plan(self, stages: list[tuple[str, int]]) -> None:
        total = sum(calls for _, calls in stages)
        listed = ", ".join(f"{name} ≤{calls}" for name, calls in stages)
        budget = f" (budget {self.budget})" if self.budget is not None else ""
        self.err.print(f"projected LM calls: {listed}; at most {total}{budget}")

    def add(self, record: PassRecord) -> None:
        self.table.add_row(
            record.name,
            f"{record.metric_before:.3f}",
            f"{record.metric_after:.3f}",
            str(record.calls),
            str(record.cached),
            str(record.prompt_tokens + record.completion_tokens),
            f"{record.seconds:.1f}",
            str(record.calls_per_run),
        )
        if self.err.is_terminal:
            return  # the live table shows it
        self.err.print(
            f"{record.name}: dev {self.metric} {record.metric_before:.3f} -> "
            f"{record.metric_after:.3f}, {record.calls} LM calls ({record.cached} cached), "
            f"{record.prompt_tokens + record.completion_tokens} tokens, "
            f"{record.seconds:.1f}s"
        )


def _metric(args: argparse.Namespace, program: Program) -> Any:
    from lmc.runtime.metrics import builtin, parse_metric

    if args.metric:
        return parse_metric(args.metric)
    declared = program.metric
    if declared is None:
        raise RunUsageError("no metric: pass --metric NAME(FIELD) or declare one in the file")
    return builtin(declared.name, declared.field)


def _failures() -> tuple[type[Exception], ...]:
    from lmc.passes.manager import PassBroke
    from lmc.runtime.context import BudgetExhausted

    return (*run_failures(), PassBroke, BudgetExhausted)
