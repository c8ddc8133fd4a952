"""The `lmc` command line (see the README and `../shared/spec/cli.md`): the table of commands, the
parser built from it, and the one place an error becomes a message and an exit code.

Exit codes: 0 success; 1 the work failed; 2 bad input or usage, reported as
`file:line:column: error: ...` and never with a traceback.

A command's module is imported only when that command runs, so `lmc --help` and `lmc check` do
not load the LM runtime, rich or the compiler (the arguments live in `lmc.cli.arguments`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn

from lmc.cli import arguments
from lmc.cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    print_diagnostics,
)
from lmc.diagnostics import ProgramError
from lmc.errors import InputError, RunError
from lmc.strings import printable

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "main"]


class Command(NamedTuple):
    words: str  # "check", or "trace show": a command of the group `trace`
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: str  # "module:function" under lmc.cli, imported when the command runs
    example: str  # a worked example, shown by the command's --help (tests parse each one)


GROUPS = {
    "trace": "read a trace written by --trace",
    "cache": "the LM response cache",
    "index": "retrieval indexes",
}

COMMANDS = (
    Command(
        "check",
        "parse and type-check; every error at once",
        arguments.check,
        "check:run",
        "lmc check examples/rag/program.lmp",
    ),
    Command(
        "fmt",
        "print (or check, or rewrite) the canonical form",
        arguments.fmt,
        "fmt:run",
        "lmc fmt -w examples/rag/program.lmp",
    ),
    Command(
        "show",
        "the program graph as a picture",
        arguments.show,
        "show:run",
        "lmc show examples/rag/program.lmp -o rag.svg",
    ),
    Command(
        "opt",
        "print the program after a pipeline of passes",
        arguments.opt,
        "opt:run",
        "lmc opt examples/rag/program.lmp -p dead-steps,dedupe-steps",
    ),
    Command(
        "run",
        "run a program on an LM",
        arguments.run,
        "run:run",
        'lmc run examples/qa/program.lmp --input question="Who wrote Hamlet?"',
    ),
    Command(
        "trace show",
        "the rendered prompts, replies and fields",
        arguments.trace_show,
        "trace:show",
        "lmc trace show calls.jsonl -n 5",
    ),
    Command("cache stats", "entries and size", arguments.none, "cache:stats", "lmc cache stats"),
    Command("cache clear", "remove every entry", arguments.none, "cache:clear", "lmc cache clear"),
    Command(
        "eval",
        "score a program or artifact on a dataset",
        arguments.evaluate,
        "eval:run",
        "lmc eval fever.json --data examples/fever/dev.jsonl --report eval.html",
    ),
    Command(
        "compile",
        "optimize a program against data and a metric",
        arguments.compile_,
        "compile:run",
        "lmc compile examples/fever/program.lmp --train examples/fever/train.jsonl "
        "--dev examples/fever/dev.jsonl --budget-calls 600 -o fever.json --report fever.html",
    ),
    Command(
        "report",
        "the compile report of an artifact, as one HTML page",
        arguments.report,
        "report:run",
        "lmc report fever.json -o fever.html",
    ),
    Command(
        "index build",
        "build the index of a JSONL corpus",
        arguments.index_build,
        "index:build",
        "lmc index build examples/rag/corpus.jsonl",
    ),
)

# What `lmc --help` ends with: a session from a program to its compiled form and report.
EXAMPLES = """\
examples:
  lmc check examples/qa/program.lmp
  lmc run examples/qa/program.lmp --input question="Who wrote Hamlet?"
  lmc compile examples/fever/program.lmp --train examples/fever/train.jsonl -o fever.json
  lmc report fever.json -o fever.html

Each command's --help shows an example of its own."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` and return its exit code. Without `argv`, main is the `lmc`
    process itself (the console script, `python -m lmc.cli.main`), run on its own arguments:
    then Ctrl-C, and work that failed, end the process at once (see `_end_now`)."""
    args = parser().parse_args(argv)
    # What was run, as typed: an artifact and a report name the command that made them.
    args.command_line = ["lmc", *(sys.argv[1:] if argv is None else argv)]
    try:
        code = _handler(args.handler)(args)
    except KeyboardInterrupt:
        if argv is None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: nothing is left
        _show_interrupted()
        code = EXIT_INTERRUPTED
    except Exception as error:
        shown = exit_code(error)
        if shown is None:
            raise  # not a user's mistake nor a failed LM: a bug in lmc, with its traceback
        code = shown
    if argv is None and code in (EXIT_FAILED, EXIT_INTERRUPTED):
        _end_now(code)
    return code


def _end_now(code: int) -> NoReturn:
    """End the `lmc` process with `code` now, after work stopped early (Ctrl-C, `--max-errors`,
    a failed run), when LM calls may still be in flight.

    Not by returning: at the interpreter's exit, `concurrent.futures` joins every thread of
    every pool, and the run context's LM-call threads may be blocked in calls that no other
    thread can stop (a served model's read, 120 s a try with its retries; a local model's
    generation), so `lmc` would wait for each to come back, minutes after saying it stopped.
    Nothing is lost by not waiting: the `finally` blocks on the way here closed the results and
    trace files; results lines are flushed as records finish, checkpoints and artifacts are
    written whole once finished, and the cache commits each reply. The records whose calls are
    still in flight were dropped by the run; their replies would never be read. (A local Ray
    cluster lmc started shares this process's fate: on Linux its processes end with it.)"""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def exit_code(error: BaseException) -> int | None:
    """Show `error` on stderr the way its kind is shown and return its exit code; None for an
    error that is not lmc's own (a bug, to be shown with its traceback). Ctrl-C is `main`'s."""
    for kind, code, show in _EXITS:
        if isinstance(error, kind):
            show(error)
            return code
    return None


def _show_message(error: BaseException) -> None:
    # Messages quote replies, records and artifacts: what a terminal would obey is escaped.
    print(f"lmc: error: {printable(str(error))}", file=sys.stderr)


def _show_interrupted() -> None:
    print("lmc: interrupted", file=sys.stderr)


# Which kind of error means which exit code, and how it is shown; the first match wins (a
# program's errors are input errors shown with their source lines).
_EXITS: tuple[tuple[type[BaseException], int, Callable[[Any], None]], ...] = (
    (ProgramError, EXIT_BAD_INPUT, print_diagnostics),
    (InputError, EXIT_BAD_INPUT, _show_message),
    (RunError, EXIT_FAILED, _show_message),
)


def _handler(target: str) -> Callable[[argparse.Namespace], int]:
    module, _, function = target.partition(":")
    found: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"lmc.cli.{module}"), function
    )
    return found


def parser() -> argparse.ArgumentParser:
    """The whole command line, from `COMMANDS`; no command's module is imported."""
    top = argparse.ArgumentParser(
        prog="lmc",
        description="A compiler for language-model programs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Any] = {}
    for command in COMMANDS:
        group, _, word = command.words.rpartition(" ")
        if group and group not in groups:
            grouped = commands.add_parser(group, help=GROUPS[group])
            groups[group] = grouped.add_subparsers(
                dest=f"{group}_command", required=True, metavar="COMMAND"
            )
        into = groups[group] if group else commands
        sub = into.add_parser(
            word,
            help=command.help,
            description=command.help,
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(sub)
        sub.set_defaults(handler=command.handler)
    return top


class _Version(argparse.Action):
    """`--version`, looked up only when asked for (package metadata is slow to read)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("lmc")
        except PackageNotFoundError:
            found = "unknown"
        print(f"lmc {found}")
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
