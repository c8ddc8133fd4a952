"""Ctrl-C ends a real `lmc` process at once: a dataset run, an eval or a compile whose model never
answers one question stops when interrupted, with exit code 130, `lmc: interrupted` and no
traceback, and the results finished before it on disk, instead of waiting for the LM call in
flight to come back (a served model may take minutes, with its retries).

The model is the fault server on 127.0.0.1, which holds q3's call open until the test ends; `lmc`
runs from this checkout, as `python -c`. Ctrl-C is sent once the server has been asked what shows
the run is where the test wants it, never after a fixed sleep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, Request, hang, reply
from programs import QA_WITH_METRIC as QA

SLOW = "q3"  # the question the model never answers while the test runs
# Ctrl-C reaches a terminal's foreground process with SIGINT's default action, which Python
# turns into KeyboardInterrupt. A test runner started in the background (`make test &`) hands
# its children SIGINT ignored, and Python keeps it ignored: put back what a terminal gives.
RUN_LMC = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from lmc.cli.main import main; sys.exit(main())"
)
READY_S = 60  # for lmc to start and reach the slow call (a loaded CI machine is slow)
STOPPED_S = 20  # for lmc to end after Ctrl-C; waiting for the slow call would take forever

# Each command over the same 8 records, and the questions whose calls show it is under way: with
# two records in flight, q4 is asked only once q0..q2 are finished (and written by `run`).
COMMANDS = {
    "run": (("run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl"), {SLOW, "q4"}),
    "eval": (("eval", "qa.lmp", "--data", "in.jsonl"), {SLOW, "q4"}),
    "compile": (
        ("compile", "qa.lmp", "--train", "in.jsonl", "-p", "bootstrap-demos{candidates=2}"),
        {SLOW},
    ),
}


def asked(request: Request) -> str:
    """Which question a request is about: the last `q<N>` its prompt names (demos come first)."""
    found = re.findall(r"q\d+", json.dumps(request.body))
    return found[-1] if found else "?"


def by_question(handler: Any, request: Request) -> None:
    """Echo the question; never answer SLOW (its call hangs until the server closes)."""
    question = asked(request)
    answer = hang(3600) if question == SLOW else reply(json.dumps({"answer": f"echo {question}"}))
    answer(handler, request)


def start_lmc(folder: Path, server: FaultServer, *argv: str) -> subprocess.Popen[str]:
    served = ("--lm", "openai/qa", "--api-base", server.url, "--concurrency", "2")
    return subprocess.Popen(
        [sys.executable, "-c", RUN_LMC, *argv, *served],
        cwd=folder,
        env={**os.environ, "LMC_CACHE_DIR": str(folder / "cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_stops_at_once_without_waiting_for_calls_in_flight(
    tmp_path: Path, fault_server: FaultServer, command: str
) -> None:
    argv, under_way = COMMANDS[command]
    fault_server.otherwise = by_question
    (tmp_path / "qa.lmp").write_text(QA, encoding="utf-8")
    records = [{"question": f"q{i}", "answer": f"echo q{i}"} for i in range(8)]
    data = "".join(json.dumps(record) + "\n" for record in records)
    (tmp_path / "in.jsonl").write_text(data, encoding="utf-8")
    process = start_lmc(tmp_path, fault_server, *argv)
    try:
        deadline = time.monotonic() + READY_S
        while not under_way <= {asked(r) for r in fault_server.requests}:
            assert process.poll() is None, f"lmc ended before Ctrl-C: {process.communicate()}"
            assert time.monotonic() < deadline, f"lmc was not asking {sorted(under_way)}"
            time.sleep(0.01)

        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=STOPPED_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lmc was still running {STOPPED_S} s after Ctrl-C: it waited for a call")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert "Traceback" not in err
    assert err.splitlines()[-1:] == ["lmc: interrupted"]
    assert process.returncode == 130
    if command == "run":  # q4 was answered, but its line waits for q3's: results are in order
        lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["inputs"]["question"] for line in lines] == ["q0", "q1", "q2"]


def test_a_run_stopped_by_max_errors_ends_without_waiting_for_calls_in_flight(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    def failing_q2(handler: Any, request: Request) -> None:
        """q2's replies are not JSON, so its record fails; they come once q3's call is held."""
        if asked(request) != "q2":
            return by_question(handler, request)
        deadline = time.monotonic() + READY_S
        while SLOW not in {asked(r) for r in fault_server.requests}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        reply("no JSON here")(handler, request)

    fault_server.otherwise = failing_q2
    (tmp_path / "qa.lmp").write_text(QA, encoding="utf-8")
    data = "".join(json.dumps({"question": f"q{i}"}) + "\n" for i in range(8))
    (tmp_path / "in.jsonl").write_text(data, encoding="utf-8")
    argv = ("run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl", "--max-errors", "1")

    process = start_lmc(tmp_path, fault_server, *argv)
    try:
        _, err = process.communicate(timeout=READY_S + STOPPED_S)
    except subprocess.TimeoutExpired:
        pytest.fail("lmc did not end once --max-errors stopped the run: it waited for a call")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert SLOW in {asked(r) for r in fault_server.requests}  # in flight when the run stopped
    assert "Traceback" not in err
    assert "stopped after 1 failed records (--max-errors 1)" in err
    assert process.returncode == 1
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["inputs"]["question"] for line in lines] == ["q0", "q1", "q2"]
