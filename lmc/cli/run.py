"""`lmc run`, `lmc trace show` and `lmc cache stats|clear`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lmc.program import Program
from lmc.runtime.stats import RunStats

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class RunUsageError(Exception):
    """Bad input to `lmc run` (options, inputs, data): exit 2."""


class RunFailed(Exception):
    """The work failed (an LM unreachable, a reply unusable after repair): exit 1."""


def dataset_progress(err: Console) -> Progress:
    """A bar of records done, shown on a terminal only (piped output stays plain)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def add_commands(commands: Any, load_program: Callable[[str, str | None], Program]) -> None:
    run = commands.add_parser("run", help="run a program on an LM")
    run.add_argument("program_file", metavar="PROGRAM.lmp|ARTIFACT.json")
    run.add_argument("--program", help="which program of the file")
    run.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="one input (repeat for each); text as written, other types as JSON",
    )
    run.add_argument("--json", action="store_true", help="print the outputs as one JSON object")
    run.add_argument("--data", metavar="IN.jsonl", help="run every record of a dataset")
    run.add_argument("--out", metavar="OUT.jsonl", help="where a dataset run's results go")
    run.add_argument("--lm", help="model: local (default), local:PATH.gguf, or a litellm string")
    run.add_argument("--api-base", help="address of a served model (OpenAI-style server)")
    run.add_argument("--backend", help="prompt format: json (default), chat, completion")
    run.add_argument("--concurrency", type=int, default=4, help="records in flight at once")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    run.add_argument("--trace", metavar="TRACE.jsonl", help="write every LM call here")
    run.set_defaults(handler=lambda args, out: cmd_run(args, out, load_program))

    trace = commands.add_parser("trace", help="read a trace written by --trace")
    trace_commands = trace.add_subparsers(dest="trace_command", required=True, metavar="COMMAND")
    show = trace_commands.add_parser("show", help="the rendered prompts, replies and fields")
    show.add_argument("trace_file", metavar="TRACE.jsonl")
    show.add_argument("-n", type=int, default=None, metavar="N", help="only the first N calls")
    show.set_defaults(handler=cmd_trace_show)

    cache = commands.add_parser("cache", help="the LM response cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")
    cache_commands.add_parser("stats", help="entries and size").set_defaults(
        handler=cmd_cache_stats
    )
    cache_commands.add_parser("clear", help="remove every entry").set_defaults(
        handler=cmd_cache_clear
    )


# run ---------------------------------------------------------------------------------------------


def cmd_run(
    args: argparse.Namespace, out: Console, load_program: Callable[[str, str | None], Program]
) -> int:
    from lmc.runtime.data import DataError, parse_cli_inputs, read_records

    program = load_program(args.program_file, args.program)
    if args.data and args.input:
        raise RunUsageError("give either --input FIELD=VALUE ... or --data IN.jsonl, not both")
    if args.out and not args.data:
        raise RunUsageError("--out is for a dataset run: add --data IN.jsonl")
    if args.concurrency < 1:
        raise RunUsageError("--concurrency must be at least 1")
    try:
        records = read_records(Path(args.data), program.inputs) if args.data else None
        inputs = None if args.data else parse_cli_inputs(program.inputs, args.input)
    except DataError as error:
        raise RunUsageError(str(error)) from None
    context = _context(args, *compiled_for(program))
    try:
        if records is not None:
            return _run_dataset(program, records, args, context)
        return _run_one(program, inputs or {}, args, out, context)
    finally:
        if context.trace is not None:
            context.trace.close()


def compiled_for(program: Program) -> tuple[str | None, str | None]:
    """The model and backend a compiled program runs on unless the options say otherwise."""
    info = program.compiled
    return (info.lm, info.backend) if info is not None else (None, None)


def _context(
    args: argparse.Namespace,
    default_lm: str | None = None,
    default_backend: str | None = None,
    *,
    lm: str | None = None,
) -> Any:
    """The run context the options ask for: `lm` (a compile's teacher), else `--lm`, else
    `default_lm` (what an artifact was compiled for), else the default model; likewise the
    backend."""
    from lmc.backends.clients.local import ModelFileError
    from lmc.runtime.context import DEFAULT_BACKEND, context

    try:
        return context(
            lm or args.lm or default_lm,
            backend=args.backend or default_backend or DEFAULT_BACKEND,
            api_base=args.api_base,
            cache=not getattr(args, "no_cache", False),
            trace=getattr(args, "trace", None),
            concurrency=args.concurrency,
        )
    except (LookupError, ValueError) as error:
        raise RunUsageError(str(error).strip("'\"")) from None
    except ModelFileError as error:
        raise RunFailed(str(error)) from None


def _failures() -> tuple[type[Exception], ...]:
    from lmc.backends.clients.hosted import HostedLMError
    from lmc.backends.completion import TemplateMissing
    from lmc.runtime.executor import RetrievalUnavailable

    return (HostedLMError, TemplateMissing, RetrievalUnavailable)


def _run_one(
    program: Program, inputs: dict[str, Any], args: argparse.Namespace, out: Console, context: Any
) -> int:
    from lmc.runtime import executor

    err = Console(stderr=True, highlight=False, markup=False)
    try:
        with err.status(f"running {program.name} on {context.lm.identity}"):
            outputs = executor.run(context, program.ir, inputs)
    except executor.StepFailed as failure:
        raise RunFailed(f"{failure}\nthe reply was:\n{failure.reply}") from None
    except _failures() as error:
        raise RunFailed(str(error)) from None
    if args.json:
        out.print(json.dumps(outputs, ensure_ascii=False))
    else:
        for name, value in outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out.print(f"{name}: {text}")
    return EXIT_OK


def _run_dataset(
    program: Program, records: list[dict[str, Any]], args: argparse.Namespace, context: Any
) -> int:
    from lmc.runtime.executor import run_records

    err = Console(stderr=True, highlight=False, markup=False)
    target = Path(args.out) if args.out else None
    started = time.perf_counter()
    failed = 0

    async def stream(write: Callable[[str], None], advance: Callable[[], None]) -> None:
        nonlocal failed
        async for result in run_records(context, program.ir, records):
            line: dict[str, Any] = {"record": result.index + 1, "inputs": result.inputs}
            if result.error is None:
                line["outputs"] = result.outputs
            else:
                failed += 1
                line["error"] = result.error
                line["reply"] = result.reply
            write(json.dumps(line, ensure_ascii=False))
            advance()

    progress = dataset_progress(err)
    try:
        with progress, _output(target) as write:
            task = progress.add_task(program.name, total=len(records))
            asyncio.run(stream(write, lambda: progress.advance(task)))
    except _failures() as error:
        raise RunFailed(str(error)) from None
    elapsed = time.perf_counter() - started
    _summary(err, context.stats, len(records), failed, elapsed, target)
    return EXIT_FAILED if failed else EXIT_OK


class _output:
    """JSONL lines to a temporary file renamed into place at the end, or to standard output."""

    def __init__(self, target: Path | None):
        self.target = target
        self.temporary: Path | None = None

    def __enter__(self) -> Callable[[str], None]:
        if self.target is None:
            return lambda line: print(line, flush=True)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.")
        self.temporary = Path(name)
        self.file = os.fdopen(handle, "w", encoding="utf-8")

        def write(line: str) -> None:
            self.file.write(line + "\n")

        return write

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.target is None or self.temporary is None:
            return
        self.file.close()
        if kind is None:
            os.chmod(self.temporary, 0o644)
            os.replace(self.temporary, self.target)
        else:
            self.temporary.unlink(missing_ok=True)


def _summary(
    err: Console, stats: RunStats, records: int, failed: int, elapsed: float, target: Path | None
) -> None:
    total = stats.total()
    where = f"wrote {target}: " if target else ""
    err.print(
        f"{where}{records} records, {failed} failed, {total.calls} LM calls "
        f"({total.cache_hits} cached, {total.repairs} repairs), "
        f"{total.prompt_tokens}+{total.completion_tokens} tokens, {elapsed:.1f}s "
        f"({records / elapsed if elapsed else 0:.2f} records/s)"
    )
    if err.is_terminal and stats.steps:
        table = Table(
            "step", "calls", "cached", "repairs", "failed", "tokens in", "tokens out", "seconds"
        )
        for name, s in stats.steps.items():
            table.add_row(
                name,
                str(s.calls),
                str(s.cache_hits),
                str(s.repairs),
                str(s.failures),
                str(s.prompt_tokens),
                str(s.completion_tokens),
                f"{s.latency_s:.1f}",
            )
        err.print(table)


# trace and cache ---------------------------------------------------------------------------------


def cmd_trace_show(args: argparse.Namespace, out: Console) -> int:
    from lmc.runtime.trace import read_trace, show_trace

    try:
        calls = read_trace(Path(args.trace_file))
    except FileNotFoundError:
        raise RunUsageError(f"{args.trace_file}: no such file") from None
    except ValueError as error:
        raise RunUsageError(str(error)) from None
    # Prompts are long: this console wraps them inside their panels.
    console = Console(highlight=False, markup=False)
    show_trace(calls[: args.n] if args.n is not None else calls, console)
    return EXIT_OK


def cmd_cache_stats(args: argparse.Namespace, out: Console) -> int:
    from lmc.runtime.cache import ResponseCache

    stats = ResponseCache().stats()
    out.print(f"{stats.path}: {stats.entries} entries, {stats.bytes / 1e6:.1f} MB")
    for model, count in stats.models.items():
        out.print(f"  {model}: {count}")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace, out: Console) -> int:
    from lmc.runtime.cache import ResponseCache

    removed = ResponseCache().clear()
    out.print(f"removed {removed} entries")
    return EXIT_OK
