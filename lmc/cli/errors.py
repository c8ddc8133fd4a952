"""Exit codes, the errors commands raise for them, and how a program's errors are shown.

Which error means which exit code is decided in one place, `lmc.cli.main`, by the error's kind
(`lmc.errors`); this module stays light (no rich, no lmc internals) so that every command, and
`lmc --help`, can import it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lmc.errors import InputError, RunError
from lmc.strings import printable

if TYPE_CHECKING:
    from lmc.diagnostics import ProgramError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130


class UsageError(InputError):
    """Bad command-line input that is not about a program's text (options, a missing file)."""


class RunFailed(RunError):
    """The work failed, with more said than the error that ended it (a step's raw reply)."""


def say_error(message: str) -> None:
    print(f"lmc: {message}", file=sys.stderr)


def print_diagnostics(error: ProgramError) -> None:
    """Every error of a program, with its source line and caret; in colour on a terminal."""
    lines = printable(error.render()).splitlines()
    count = len(error.diagnostics)
    if sys.stderr.isatty():
        _print_styled(lines, count)
        return
    # Piped (scripts, editors, CI): plain text, and no need to load rich.
    for line in lines:
        print(line, file=sys.stderr)
    if count > 1:
        print(f"{count} errors", file=sys.stderr)


def _print_styled(lines: list[str], count: int) -> None:
    from rich.console import Console
    from rich.text import Text

    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    for line in lines:
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
    if count > 1:
        err.print(f"{count} errors", style="bold")
