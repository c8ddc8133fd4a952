"""`lmc trace show`: the calls a `--trace` file holds, with their prompts, replies and fields."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lmc.cli.errors import EXIT_OK
from lmc.runtime.trace import TraceError, read_trace_lines, trace_panel


def show(args: argparse.Namespace) -> int:
    path = Path(args.trace_file)
    calls = read_trace_lines(path)
    # Prompts are long: this console wraps them inside their panels.
    console = Console(highlight=False, markup=False)
    for number, call in calls[: args.n] if args.n is not None else calls:
        try:
            panel = trace_panel(call)
        except TraceError as error:
            raise TraceError(f"{path}: line {number}: {error}") from None
        console.print(panel)
    return EXIT_OK
