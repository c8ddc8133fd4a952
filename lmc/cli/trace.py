"""`lmc trace show`: the calls a `--trace` file holds, with their prompts, replies and fields."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lmc.cli.errors import EXIT_OK, UsageError
from lmc.runtime.trace import read_trace, show_trace


def show(args: argparse.Namespace) -> int:
    try:
        calls = read_trace(Path(args.trace_file))
    except FileNotFoundError:
        raise UsageError(f"{args.trace_file}: no such file") from None
    # Prompts are long: this console wraps them inside their panels.
    console = Console(highlight=False, markup=False)
    show_trace(calls[: args.n] if args.n is not None else calls, console)
    return EXIT_OK
