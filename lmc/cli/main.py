"""The `lmc` command line (see the README and `../shared/spec/cli.md`).

Exit codes: 0 success; 1 the work failed; 2 bad input or usage, reported as
`file:line:column: error: ...` and never with a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.console import Console
from rich.text import Text

from lmc.cli import compile as cli_compile
from lmc.cli import eval as cli_eval
from lmc.cli import index as cli_index
from lmc.cli import run as cli_run
from lmc.compiler.artifact import ArtifactError, is_artifact_path
from lmc.diagnostics import LmcError
from lmc.files import write_atomically
from lmc.ir.lower import load_text, select
from lmc.program import Program, load
from lmc.syntax.parser import parse
from lmc.syntax.printer import print_module

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input that is not about a program's text (a missing file, say)."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, expected a .lmp file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror})") from None


def _load_program(path: str, name: str | None) -> Program:
    if is_artifact_path(path):
        try:
            return load(path, name)
        except ArtifactError as error:
            raise UsageError(str(error)) from None
    return Program(select(load_text(_read(path), path), name, how="--program "))


# commands ----------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, out: Console) -> int:
    failed: list[LmcError] = []
    for path in args.files:
        try:
            checked = load_text(_read(path), path)
        except LmcError as error:
            failed.append(error)
            continue
        steps = sum(len(g.steps()) for g in checked.graphs.values())
        programs = len(checked.graphs)
        out.print(
            f"{path}: ok ({programs} program{'s' * (programs != 1)}, "
            f"{steps} step{'s' * (steps != 1)})",
            highlight=False,
        )
    if failed:
        raise LmcError(
            [d for e in failed for d in e.diagnostics],
            {k: v for e in failed for k, v in e.sources.items()},
        )
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace, out: Console) -> int:
    unformatted = []
    for path in args.files:
        if is_artifact_path(path):
            # An artifact's program in its text form, as it would read beside the artifact.
            program = _load_program(path, None)
            if args.check or args.write:
                raise UsageError(f"{path}: --check and --write are for .lmp files, not artifacts")
            sys.stdout.write(program.to_lmp(Path(path).resolve().parent))
            continue
        text = _read(path)
        formatted = print_module(parse(text, path))
        if args.check:
            if formatted != text:
                unformatted.append(path)
                out.print(f"would reformat {path}", highlight=False)
        elif args.write:
            if formatted != text:
                write_atomically(Path(path), formatted.encode())
                out.print(f"reformatted {path}", highlight=False)
        else:
            sys.stdout.write(formatted)
    return EXIT_FAILED if unformatted else EXIT_OK


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    from lmc.ir.render import RenderError, write_picture

    program = _load_program(args.program_file, args.program)
    if args.lmp:
        sys.stdout.write(program.to_lmp(Path(args.program_file).resolve().parent))
        return EXIT_OK
    target = args.output or f"{program.name}.svg"
    try:
        written = write_picture(program.ir, target)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"{target}: cannot write it ({error.strerror})") from None
    except RenderError as error:
        out.print(Text(f"lmc: {error}"), style="red")
        return EXIT_FAILED
    out.print(f"wrote {written}", highlight=False)
    return EXIT_OK


# parser ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmc", description="A compiler for language-model programs."
    )
    parser.add_argument("--version", action="version", version=f"lmc {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="parse and type-check; every error at once")
    check.add_argument("files", nargs="+", metavar="PROGRAM.lmp")
    check.set_defaults(handler=cmd_check)

    fmt = commands.add_parser("fmt", help="print (or check, or rewrite) the canonical form")
    fmt.add_argument("files", nargs="+", metavar="PROGRAM.lmp|ARTIFACT.json")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    mode.add_argument("-w", "--write", action="store_true", help="rewrite files in place")
    fmt.set_defaults(handler=cmd_fmt)

    show = commands.add_parser("show", help="the program graph as a picture")
    show.add_argument("program_file", metavar="PROGRAM.lmp|ARTIFACT.json")
    show.add_argument(
        "-o",
        "--output",
        help="picture to write: .svg, .png, .pdf or .dot (default: PROGRAM_NAME.svg)",
    )
    show.add_argument("--program", help="which program of the file")
    show.add_argument(
        "--lmp",
        action="store_true",
        help="print the program (a compiled one with what it learned) as .lmp text instead",
    )
    show.set_defaults(handler=cmd_show)

    cli_run.add_commands(commands, _load_program)
    cli_eval.add_commands(commands, _load_program)
    cli_compile.add_command(commands, _load_program)
    cli_index.add_commands(commands)
    return parser


def _version() -> str:
    try:
        return version("lmc")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    # Paths and messages are printed as given: no markup, no wrapping that would break scripts.
    out = Console(highlight=False, markup=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Console], int] = args.handler
    try:
        return handler(args, out)
    except LmcError as error:
        _print_errors(error, err)
        return EXIT_BAD_INPUT
    except (UsageError, cli_run.RunUsageError) as error:
        err.print(Text(f"lmc: error: {error}"))
        return EXIT_BAD_INPUT
    except cli_run.RunFailed as error:
        err.print(Text(f"lmc: error: {error}"))
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("lmc: interrupted")
        return 130


def _print_errors(error: LmcError, err: Console) -> None:
    for line in error.render().splitlines():
        text = Text(line)
        marker = line.find(": error: ")
        if marker >= 0:
            text.stylize("bold", 0, marker + 1)
            text.stylize("bold red", marker + 2, marker + 8)
        elif line.lstrip().startswith(tuple("0123456789|")):
            text.stylize("dim", 0, line.find("|") + 1)
            if set(line.split("|", 1)[-1].strip()) <= {"^", "~"}:
                text.stylize("bold red", line.find("|") + 1)
        err.print(text, soft_wrap=True)
    count = len(error.diagnostics)
    if count > 1:
        err.print(f"{count} errors", style="bold")


if __name__ == "__main__":
    sys.exit(main())
