"""`lmc fmt`: print, check or rewrite `.lmp` files in their canonical form; an artifact's program
is printed as the `.lmp` text it holds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmc.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from lmc.cli.loading import load_program
from lmc.files import is_artifact_path, read_marked_source, write_atomically
from lmc.syntax.parser import parse
from lmc.syntax.printer import print_module


def run(args: argparse.Namespace) -> int:
    unformatted = []
    for path in args.files:
        if is_artifact_path(path):
            _print_artifact(path, args)
            continue
        mark, text = read_marked_source(path)
        formatted = print_module(parse(text, path))
        # A file written on Windows keeps its CRLF line endings: judged and rewritten with them,
        # so that --check judges the formatting, and -w leaves the file as its editor wrote it.
        kept = formatted.replace("\n", _line_ending(text))
        if args.check:
            if kept != text:
                unformatted.append(path)
                print(f"would reformat {path}")
        elif args.write:
            if kept != text:
                try:
                    write_atomically(Path(path), mark + kept.encode())
                except OSError as error:
                    raise UsageError(f"{path}: cannot write it ({error.strerror})") from None
                print(f"reformatted {path}")
        else:
            sys.stdout.write(formatted)
    return EXIT_FAILED if unformatted else EXIT_OK


def _line_ending(text: str) -> str:
    """The line ending a file is written with: its first line's (`\\r\\n` from a Windows
    editor), `\\n` for a file of one line. A file that mixes them is rewritten with the first."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _print_artifact(path: str, args: argparse.Namespace) -> None:
    """An artifact's program in its text form, as it would read beside the artifact."""
    program = load_program(path, None)
    if args.check or args.write:
        raise UsageError(f"{path}: --check and --write are for .lmp files, not artifacts")
    sys.stdout.write(program.to_lmp(Path(path).resolve().parent))
