"""Compile checkpoints: the program and pass log after each finished pass.

Every LM call of a compile is in the cache already, so a compile run again repeats no completed
call; with `resume` it also skips the passes that had finished, and picks up from the program
they left. A checkpoint is keyed by everything that decides the compile's result, and holds the
program in its text form, like an artifact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lmc.diagnostics import ProgramError
from lmc.files import cache_dir, json_value, write_atomically
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import parse_program, print_program
from lmc.passes.record import PassRecord


def checkpoint_path(**decisive: Any) -> Path:
    """Where the checkpoint of a compile with these inputs (program, data, pipeline, ...) lives."""
    text = json.dumps(decisive, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_dir() / "checkpoints" / f"{key}.json"


def save(path: Path, program: ProgramGraph, records: list[PassRecord]) -> None:
    data = {
        "program": print_program(program, str(path.parent)),
        "passes": [r.to_json() for r in records],
    }
    write_atomically(path, json.dumps(data).encode())


def load(path: Path) -> tuple[ProgramGraph, list[PassRecord]] | None:
    """The program and finished passes, or None when there is no usable checkpoint."""
    try:
        data = json_value(path.read_text(encoding="utf-8"))
        records = [PassRecord.from_json(r) for r in data["passes"]]
        return parse_program(data["program"], str(path.with_suffix(".lmp"))), records
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ProgramError):
        return None
