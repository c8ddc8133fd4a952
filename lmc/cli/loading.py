"""Loading the programs a command is given, from `.lmp` files or artifacts (`lmc.files` reads
`.lmp` text).

Heavy parts of lmc (the IR, artifacts) are imported inside the functions that need them, so
`lmc fmt` on a `.lmp` file never loads them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lmc.cli.errors import UsageError
from lmc.files import is_artifact_path, read_source

if TYPE_CHECKING:
    from lmc.compiler.program import Program


def load_program(path: str, name: str | None, corpora: list[str] | None = None) -> Program:
    """The program `name` (or the only one) of a `.lmp` file, or an artifact's compiled program.

    `corpora` (`--corpus NAME=PATH` options) is given by the commands that run the program: its
    indexes then read the corpora the user names, and an artifact's own corpora only from its
    folder."""
    from lmc.compiler.artifact import with_corpora
    from lmc.compiler.program import Program, load

    given = _corpora(corpora or [])
    if is_artifact_path(path):
        program = load(path, name)
        if corpora is None:
            return program
        return Program(with_corpora(program.ir, given, path), program.compiled)
    from lmc.ir.lower import load_text, select

    program = Program(select(load_text(read_source(path), path), name, how="--program "))
    if given:
        program = Program(with_corpora(program.ir, given))
    # The functions a `.lmp` file names are found beside it first, as `python script.py` finds
    # the script's own modules (an artifact's are not: they must be installed or on PYTHONPATH).
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return program


def open_corpora(program: Program) -> None:
    """Open (building where needed) every corpus the program retrieves from, before it runs: a
    missing or malformed corpus is the user's input, said as such (exit 2) before the first LM
    call, not found by the first retrieve after a step's calls were spent. The index stays open
    for the run (`open_retriever` keeps it for the process)."""
    from lmc.files import DataError
    from lmc.ir.graph import RetrieveNode
    from lmc.plugins import PYTHON_RETRIEVER
    from lmc.retrieval.index import open_retriever

    graph = program.ir
    for index in sorted({n.index for n in graph.nodes() if isinstance(n, RetrieveNode)}):
        ref = graph.indexes.get(index)
        if ref is None or ref.kind == PYTHON_RETRIEVER:
            continue  # undeclared is a check error; a Python retriever is imported when it runs
        try:
            open_retriever(Path(ref.path), ref.kind, ref.text_field)
        except DataError as error:
            raise DataError(f"index '{index}': {error}") from None


def _corpora(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        name, equals, path = pair.partition("=")
        if not equals or not name or not path:
            raise UsageError(f"--corpus {pair}: expected NAME=PATH, an index's name and its corpus")
        given[name] = path
    return given
