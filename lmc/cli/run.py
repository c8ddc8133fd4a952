"""`lmc run`: run a program on one set of inputs, or on every record of a dataset."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lmc.cli.errors import EXIT_FAILED, EXIT_OK, RunFailed, UsageError
from lmc.cli.loading import load_program, open_corpora
from lmc.cli.results_file import ResultsFile, record_line
from lmc.cli.running import (
    Output,
    check_outputs,
    compiled_for,
    loops_closed,
    model_work,
    program_reads,
    run_context,
)
from lmc.compiler.program import Program
from lmc.runtime import executor
from lmc.runtime.context import RunContext
from lmc.runtime.data import StreamedRecords, checked_records, parse_cli_inputs
from lmc.runtime.functions import import_callables
from lmc.runtime.progress import WorkProgress
from lmc.runtime.stats import RunStats, StepStats
from lmc.runtime.steps import StepFailed
from lmc.runtime.trace import TraceWriter
from lmc.strings import json_text, printable


def run(args: argparse.Namespace) -> int:
    program = load_program(args.program_file, args.program, args.corpus or [])
    if args.data and args.input:
        raise UsageError("give either --input FIELD=VALUE ... or --data IN.jsonl, not both")
    if args.out and not args.data:
        raise UsageError("--out is for a dataset run: add --data IN.jsonl")
    check_outputs(
        [
            Output("--out", args.out, "the results"),
            Output("--trace", args.trace, "the trace", in_place=True),
        ],
        {"the --data file": args.data, **program_reads(args.program_file, program)},
    )
    open_corpora(program)
    records = checked_records(Path(args.data), program.inputs) if args.data else None
    inputs = None if args.data else parse_cli_inputs(program.inputs, args.input)
    import_callables(program.ir)
    context = run_context(args, *compiled_for(program), traced=False)
    # The trace is opened once the results file has taken the run: a resume it refuses leaves
    # the earlier trace as it was, and one it accepts adds to it.
    with ExitStack() as closing:
        results = None
        if records is not None and args.out:
            results = ResultsFile(Path(args.out), records, len(records), resume=args.resume)
            closing.callback(results.close)
        if args.trace:
            context.trace = TraceWriter(args.trace, append=bool(results and results.done))
            closing.callback(context.trace.close)
        if records is not None:
            return _run_dataset(program, records, results, args, context)
        return _run_one(program, inputs or {}, args, context)


def _run_one(
    program: Program, inputs: dict[str, Any], args: argparse.Namespace, context: RunContext
) -> int:
    err = Console(stderr=True, highlight=False, markup=False)
    try:
        with err.status(f"running {program.name} on {context.lm.identity}"):
            outputs = executor.run(context, program.ir, inputs)
    except StepFailed as failure:
        raise RunFailed(f"{failure}\nthe reply was:\n{failure.reply}") from None
    # Replies are escaped where a terminal would act on them (`\x1b[2J`, `\r`, ...).
    if args.json:
        print(json_text(outputs))
    else:
        for name, value in outputs.items():
            text = printable(value) if isinstance(value, str) else json_text(value)
            print(f"{name}: {text}")
    return EXIT_OK


def _run_dataset(
    program: Program,
    records: StreamedRecords,
    results: ResultsFile | None,
    args: argparse.Namespace,
    context: RunContext,
) -> int:
    err = Console(stderr=True, highlight=False, markup=False)
    target = Path(args.out) if args.out else None
    done = results.done if results is not None else set()
    todo = len(records) - len(done)
    started = time.perf_counter()
    finished = failed = 0

    async def stream(advance: Callable[[], None]) -> None:
        nonlocal finished, failed
        # Read from the file as the run goes: no more records held than are in flight.
        chosen = (record for i, record in enumerate(records) if i not in done)
        numbers = (i for i in range(len(records)) if i not in done)
        async for result in executor.run_records(context, program.ir, chosen, numbers):
            line = record_line(
                result.index, result.inputs, result.outputs, result.error, result.reply
            )
            if results is None:
                print(line, flush=True)
            else:
                results.write(result.index, line)
            advance()
            finished += 1
            if result.error is not None:
                failed += 1
                if args.max_errors is not None and failed >= args.max_errors:
                    return

    with WorkProgress(err, program.name, todo, "records") as progress:
        asyncio.run(stream(progress.advance))
    elapsed = time.perf_counter() - started
    _summary(err, context.stats, (finished, todo), failed, elapsed, target, len(done))
    if args.max_errors is not None and failed >= args.max_errors:
        err.print(f"stopped after {failed} failed records (--max-errors {args.max_errors})")
    return EXIT_FAILED if failed else EXIT_OK


def _summary(
    err: Console,
    stats: RunStats,
    progress: tuple[int, int],
    failed: int,
    elapsed: float,
    target: Path | None,
    resumed: int,
) -> None:
    """`progress` is (records finished, records to do): a run `--max-errors` stopped says
    how far it got."""
    total = stats.total()
    records, todo = progress
    where = f"wrote {target}: " if target else ""
    of = f" of {todo}" if records < todo else ""
    earlier = f" ({resumed} done before, kept)" if resumed else ""
    err.print(
        f"{where}{records}{of} records{earlier}, {failed} failed, {total.calls} LM calls "
        f"({total.cache_hits} cached, {total.repairs} repairs), "
        f"{total.prompt_tokens}+{total.completion_tokens} tokens, {elapsed:.1f}s "
        f"({records / elapsed if elapsed else 0:.2f} records/s)"
    )
    for line in (model_work(total, elapsed), loops_closed(total)):
        if line is not None:
            err.print(line, soft_wrap=True)
    if err.is_terminal and stats.steps:
        table = Table(
            "step",
            "calls",
            "cached",
            "repairs",
            "failed",
            "tokens in",
            "reused",
            "tokens out",
            "seconds",
        )
        for name, s in stats.steps.items():
            table.add_row(
                name,
                str(s.calls),
                str(s.cache_hits),
                str(s.repairs),
                str(s.failures),
                str(s.prompt_tokens),
                _reused(s),
                str(s.completion_tokens),
                f"{s.latency_s:.1f}",
            )
        err.print(table)


def _reused(stats: StepStats) -> str:
    """A step's reused prompt tokens for the table: `?` where no call said, `≥N` where some."""
    if stats.reuse_unknown == 0:
        return str(stats.reused_prompt_tokens)
    return "?" if stats.reuse_unknown == stats.calls else f"≥{stats.reused_prompt_tokens}"
