"""`lmc report`: the compile report of an artifact, as one self-contained HTML page.

The page is built from the artifact alone (`lmc.report`): no LM call, nothing fetched. The same
page is what `lmc compile --report` writes at the end of a compile.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmc.cli.errors import EXIT_OK
from lmc.cli.loading import load_program
from lmc.cli.running import Output, check_outputs, program_reads
from lmc.compiler.program import Program


def run(args: argparse.Namespace) -> int:
    target = args.output or f"{Path(args.program_file).stem}.report.html"
    program = load_program(args.program_file, args.program)
    check_outputs(
        [Output("-o", target, "the report", default=args.output is None)],
        program_reads(args.program_file, program),
    )
    written = write_compile_report(program, target, source=args.program_file)
    print(f"wrote {written}")
    return EXIT_OK


def write_compile_report(program: Program, target: str | Path, *, source: str) -> Path:
    """Render `program`'s compile report to `target` (checked writable beforehand)."""
    # Imported here: matplotlib and Graphviz load only for a command that writes a report.
    from lmc.report.compile_page import compile_page
    from lmc.report.render import render_page, write_page

    page = render_page("compile.html.j2", compile_page(program, source))
    return write_page(target, page)
