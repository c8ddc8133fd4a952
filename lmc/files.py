"""Files: where lmc keeps its caches, which files are artifacts, writes that never leave a
half-written file behind, and reading the user's JSONL files (datasets, corpora) with errors that
name the file and record. Light on purpose: the command line imports it before anything else."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmc.errors import InputError


def cache_dir() -> Path:
    """Where lmc keeps what it can rebuild: LM cache, indexes, checkpoints (`$LMC_CACHE_DIR`)."""
    return Path(os.environ.get("LMC_CACHE_DIR") or Path.home() / ".cache" / "lmc")


def is_artifact_path(path: str | os.PathLike[str]) -> bool:
    """Whether a program file argument names an artifact (`.json`) rather than `.lmp` text."""
    return os.fspath(path).lower().endswith(".json")


def write_atomically(target: Path, data: bytes) -> None:
    """Write to a temporary file beside `target`, then rename it over `target`.

    A symbolic link is followed (its target is rewritten), and an existing file keeps its mode.
    """
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


class DataError(InputError):
    """Bad input data: a message that names the file and record, or the `--input` field."""


def read_bytes(path: Path) -> bytes:
    """A data file's bytes, checked to be UTF-8 text; `DataError` says why it cannot be read."""
    try:
        raw = path.read_bytes()
        raw.decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSONL file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    return raw


def jsonl_objects(text: str, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each record (a non-blank line) as a JSON object, with where it is: `file: record N`."""
    number = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        number += 1
        where = f"{path}: record {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{where}: expected a JSON object, found invalid JSON "
                f"({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a JSON object, found {type(value).__name__}")
        yield where, value
