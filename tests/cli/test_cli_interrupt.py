"""Ctrl-C ends a real `lmc` process promptly: a dataset run whose records wait on a slow model
stops when interrupted, with the records finished before it on disk, instead of waiting for
the LM calls in flight to come back (a served model may take minutes, with its retries).

The model is the fault server on 127.0.0.1; `lmc` runs from this checkout, as `python -c`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer, Request, answering
from programs import QA

SLOW = "q3"  # the question the model takes long over
RUN_LMC = "import sys; from lmc.cli.main import main; sys.exit(main())"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    released = threading.Event()

    def answer(request: Request) -> object:
        asked = re.findall(r"q\d+", json.dumps(request.body))[-1]
        if asked == SLOW:
            released.wait(60)  # until the test ends: a call that outlives the interrupt
        return json.dumps({"answer": f"echo {asked}"})

    with FaultServer(answering(answer)) as running:
        yield running
        released.set()


def test_ctrl_c_stops_a_dataset_run_without_waiting_for_calls_in_flight(
    tmp_path: Path, server: FaultServer
) -> None:
    (tmp_path / "qa.lmp").write_text(QA, encoding="utf-8")
    records = "".join(json.dumps({"question": f"q{i}"}) + "\n" for i in range(8))
    (tmp_path / "in.jsonl").write_text(records, encoding="utf-8")
    env = {**os.environ, "LMC_CACHE_DIR": str(tmp_path / "cache")}
    served = ("--lm", "openai/qa", "--api-base", server.url, "--concurrency", "2")
    run = ("run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl", *served)
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_LMC, *run],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    # q0..q2 answered, q3 waiting at the model, q4 asked beside it.
    while server.calls < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)

    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("lmc was still running 10 s after Ctrl-C: it waited for the slow LM call")

    assert time.monotonic() - interrupted < 10
    assert process.returncode == 130
    assert "lmc: interrupted" in err
    assert "Traceback" not in err
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["inputs"]["question"] for line in lines] == ["q0", "q1", "q2"]
