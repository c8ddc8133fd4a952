"""Compile checkpoints: the program and pass log after each finished pass.

Every LM call of a compile is in the cache already, so a compile run again repeats no completed
call; with `--resume` it also skips the passes that had finished, and picks up from the program
they left. A checkpoint is keyed by everything that decides the compile's result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from lmc.compiler.artifact import graph_from_json, graph_to_json
from lmc.files import cache_dir, write_atomically
from lmc.ir.graph import ProgramGraph
from lmc.passes.manager import PassRecord


def checkpoint_path(**decisive: Any) -> Path:
    """Where the checkpoint of a compile with these inputs (source, data, pipeline, ...) lives."""
    text = json.dumps(decisive, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_dir() / "checkpoints" / f"{key}.json"


def save(path: Path, program: ProgramGraph, records: list[PassRecord]) -> None:
    data = {"program": graph_to_json(program), "passes": [r.to_json() for r in records]}
    write_atomically(path, json.dumps(data).encode())


def load(path: Path) -> tuple[ProgramGraph, list[PassRecord]] | None:
    """The program and finished passes, or None when there is no usable checkpoint."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {f.name for f in fields(PassRecord)}
        records = [PassRecord(**{k: v for k, v in r.items() if k in names}) for r in data["passes"]]
        return graph_from_json(data["program"]), records
    except (OSError, ValueError, KeyError, TypeError):
        return None
