"""Files: where lmc keeps its caches, which files are artifacts, and writes that never leave a
half-written file behind. Light on purpose: the command line imports it before anything else."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
