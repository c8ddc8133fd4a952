"""Compile checkpoints: the program and pass log after each finished pass.

Every LM call of a compile is in the cache already, so a compile run again repeats no completed
call; with `resume` it also skips the passes that had finished, and picks up from the program
they left. A checkpoint is keyed by everything that decides the compile's result, and holds the
program in its text form, like an artifact, and the LM calls spent so far: a resumed compile's
budget counts them, since the calls it replays from the cache are free.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

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


class Saved(NamedTuple):
    program: ProgramGraph  # as the finished passes left it
    passes: list[PassRecord]  # the finished passes, in order
    calls: int  # LM calls the compile made (not cache hits), finished passes or not
    # LM calls made when the last finished pass ended (0 before any): the passes left cannot
    # replay these from the cache, while an unfinished pass's own calls come back free.
    finished_calls: int


def save(path: Path, saved: Saved) -> None:
    data = {
        "program": print_program(saved.program, str(path.parent)),
        "passes": [r.to_json() for r in saved.passes],
        "calls": saved.calls,
        "finished_calls": saved.finished_calls,
    }
    write_atomically(path, json.dumps(data).encode())


def load(path: Path) -> Saved | None:
    """What a compile had done, or None when there is no usable checkpoint."""
    try:
        data = json_value(path.read_text(encoding="utf-8"))
        records = [PassRecord.from_json(r) for r in data["passes"]]
        program = parse_program(data["program"], str(path.with_suffix(".lmp")))
        # A checkpoint from before lmc kept the count: the finished passes' own calls.
        calls = data.get("calls", sum(r.calls for r in records))
        finished_calls = data.get("finished_calls", calls)
        if not all(isinstance(n, int) and n >= 0 for n in (calls, finished_calls)):
            return None
        return Saved(program, records, calls, finished_calls)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ProgramError):
        return None
