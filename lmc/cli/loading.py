"""Reading the files a command is given: `.lmp` text, and programs from `.lmp` or artifacts.

Heavy parts of lmc (the IR, artifacts) are imported inside the functions that need them, so
`lmc fmt` on a `.lmp` file never loads them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lmc.cli.errors import UsageError
from lmc.files import is_artifact_path

if TYPE_CHECKING:
    from lmc.compiler.program import Program


def read_source(path: str) -> str:
    """A `.lmp` file's text; a missing, unreadable or non-UTF-8 file is a `UsageError`."""
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


def load_program(path: str, name: str | None) -> Program:
    """The program `name` (or the only one) of a `.lmp` file, or an artifact's compiled program."""
    from lmc.compiler.program import Program, load

    if is_artifact_path(path):
        return load(path, name)
    from lmc.ir.lower import load_text, select

    program = Program(select(load_text(read_source(path), path), name, how="--program "))
    # The functions a `.lmp` file names are found beside it first, as `python script.py` finds
    # the script's own modules (an artifact's are not: they must be installed or on PYTHONPATH).
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return program
