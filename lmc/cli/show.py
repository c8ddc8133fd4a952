"""`lmc show`: the program graph as a picture (or, with `--lmp`, as `.lmp` text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmc.cli.errors import EXIT_OK, UsageError
from lmc.cli.loading import load_program
from lmc.cli.running import Output, check_outputs, program_reads
from lmc.ir.render import write_picture


def run(args: argparse.Namespace) -> int:
    program = load_program(args.program_file, args.program)
    if args.lmp:
        sys.stdout.write(program.to_lmp(Path(args.program_file).resolve().parent))
        return EXIT_OK
    target = args.output or f"{program.name}.svg"
    check_outputs(
        [Output("-o", target, "the picture", default=args.output is None)],
        program_reads(args.program_file, program),
    )
    try:
        written = write_picture(program.ir, target)
    except OSError as error:
        raise UsageError(f"{target}: cannot write it ({error.strerror})") from None
    print(f"wrote {written}")
    return EXIT_OK
