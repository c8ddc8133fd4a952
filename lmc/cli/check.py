"""`lmc check`: parse and type-check `.lmp` files, reporting every error of every file at once."""

from __future__ import annotations

import argparse

from lmc.cli.errors import EXIT_OK
from lmc.diagnostics import ProgramError
from lmc.files import read_source
from lmc.ir.lower import load_text


def run(args: argparse.Namespace) -> int:
    failed: list[ProgramError] = []
    for path in args.files:
        try:
            checked = load_text(read_source(path), path)
        except ProgramError as error:
            failed.append(error)
            continue
        steps = sum(len(g.steps()) for g in checked.graphs.values())
        programs = len(checked.graphs)
        print(
            f"{path}: ok ({programs} program{'s' * (programs != 1)}, "
            f"{steps} step{'s' * (steps != 1)})"
        )
    if failed:
        raise ProgramError(
            [d for e in failed for d in e.diagnostics],
            {k: v for e in failed for k, v in e.sources.items()},
        )
    return EXIT_OK
