"""`kill -9` at a random moment loses nothing: a real `lmc` process, a served model (the fault
server on 127.0.0.1, answering a little slowly so the kill lands mid-work), killed after a
random number of LM calls, then run again.

- A dataset run: the records written before the kill are not asked again (the server counts
  what it is asked), the rerun completes the file in input order, no temporary file is left.
- A compile: the artifact is absent or complete after the kill; `--resume` finishes it, and the
  two processes together ask the server no more than one uninterrupted compile does, give or
  take the calls in flight when the kill landed.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer, Request, answering
from programs import QA_WITH_METRIC as QA

from lmc.compiler.artifact import read_artifact

RECORDS = 24
CONCURRENCY = 2
LMC = str(Path(sys.executable).parent / "lmc")


def asked(request: Request) -> str:
    """Which question a request is about: the last `q<N>` its prompt names."""
    found = re.findall(r"q\d+", json.dumps(request.body))
    return found[-1] if found else "?"


def slow_echo(request: Request) -> object:
    time.sleep(0.05)
    return json.dumps({"answer": f"echo {asked(request)}"})


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(answering(slow_echo)) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "qa.lmp").write_text(QA, encoding="utf-8")
    lines = [json.dumps({"question": f"q{i}", "answer": f"echo q{i}"}) for i in range(RECORDS)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def lmc(folder: Path, server: FaultServer, *argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LMC_CACHE_DIR": str(folder / "cache"), "PYTHONUNBUFFERED": "1"}
    served = ("--lm", "openai/qa", "--api-base", server.url, "--concurrency", str(CONCURRENCY))
    return subprocess.Popen(
        [LMC, *argv, *served],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_after(process: subprocess.Popen[str], server: FaultServer, calls: int) -> None:
    """`kill -9` once the server has been asked `calls` times (or the process ended)."""
    deadline = time.monotonic() + 120
    while server.calls < calls and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def finish(process: subprocess.Popen[str]) -> str:
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err
    return err


def cache_is_consistent(folder: Path) -> None:
    with sqlite3.connect(folder / "cache" / "lm-cache.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def leftovers(folder: Path) -> list[str]:
    """Temporary files lmc writes beside its outputs (the cache's own WAL files aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("trial", range(2))
def test_a_killed_dataset_run_resumes_without_asking_again(
    folder: Path, server: FaultServer, trial: int
) -> None:
    kill_at = random.Random(trial).randint(3, RECORDS - 4)
    run = ("run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")
    kill_after(lmc(folder, server, *run), server, kill_at)

    out = folder / "out.jsonl"
    written = out.read_text(encoding="utf-8") if out.exists() else ""
    whole = [json.loads(line) for line in written.splitlines(keepends=True) if line.endswith("\n")]
    done = {line["inputs"]["question"] for line in whole}
    before = server.calls

    finish(lmc(folder, server, *run))

    again = {asked(request) for request in server.requests[before:]}
    assert not again & done, f"asked again for records already written: {sorted(again & done)}"
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["record"] for line in lines] == list(range(1, RECORDS + 1))
    assert all(line["outputs"] == {"answer": f"echo q{i}"} for i, line in enumerate(lines))
    assert leftovers(folder) == []
    cache_is_consistent(folder)


@pytest.fixture
def uninterrupted_calls(folder: Path, server: FaultServer) -> int:
    """How many calls one compile asks when nothing kills it (in a cache of its own)."""
    reference = folder / "reference"
    reference.mkdir()
    for name in ("qa.lmp", "in.jsonl"):
        (reference / name).write_text((folder / name).read_text())
    finish(lmc(reference, server, *COMPILE))
    return server.calls


COMPILE = ("compile", "qa.lmp", "--train", "in.jsonl", "-p", "bootstrap-demos{candidates=2}")


@pytest.mark.parametrize("trial", range(2))
def test_a_killed_compile_leaves_no_half_artifact_and_resumes_what_it_had(
    folder: Path, server: FaultServer, uninterrupted_calls: int, trial: int
) -> None:
    start = server.calls
    kill_at = start + random.Random(trial).randint(2, uninterrupted_calls - 2)
    kill_after(lmc(folder, server, *COMPILE), server, kill_at)
    artifact = folder / "QA.compiled.json"
    if artifact.exists():  # the kill came after the end: then it is whole
        read_artifact(artifact)

    finish(lmc(folder, server, *COMPILE, "--resume"))

    read_artifact(artifact)
    # What the killed compile had finished came from the cache; only calls in flight repeat.
    assert server.calls - start <= uninterrupted_calls + CONCURRENCY
    assert [name for name in leftovers(folder) if "compiled" in name] == []
    cache_is_consistent(folder)
