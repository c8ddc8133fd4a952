"""The gate LM calls pass: at most so many at once, and a step's waiting calls kept together, so
an in-process model reuses the prompt prefix its last call of that step left."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from lmc.runtime import gate as gate_module
from lmc.runtime.gate import CallGate


def test_a_freed_slot_goes_to_a_call_of_the_step_that_last_ran_else_the_longest_waiting() -> None:
    gate = CallGate(1)
    ran: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with gate.call("a"):
            holding.set()
            release.wait()
            ran.append("a0")

    def call(name: str) -> None:
        with gate.call(name[0]):
            ran.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holding.wait()
    for queued, name in enumerate(["b1", "a1", "b2", "c1", "a2"], 1):
        threads.append(threading.Thread(target=call, args=(name,)))
        threads[-1].start()
        while gate.waiting < queued:  # each in line before the next comes
            time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join()

    # a's calls together; then b's, the longest waiting; then the rest, each in turn.
    assert ran == ["a0", "a1", "a2", "b1", "b2", "c1"]
    assert gate.waiting == 0


def test_a_call_interrupted_while_it_waits_leaves_the_line_and_no_slot_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Interrupted(threading.Event):  # Ctrl-C while an eager call waits its turn
        def wait(self, timeout: float | None = None) -> bool:
            raise KeyboardInterrupt

    gate = CallGate(1)
    with gate.call("a"):
        monkeypatch.setattr(
            gate_module, "threading", SimpleNamespace(Lock=threading.Lock, Event=Interrupted)
        )
        with pytest.raises(KeyboardInterrupt), gate.call("b"):
            raise AssertionError("it never got a turn")
        monkeypatch.undo()
        assert gate.waiting == 0
    with gate.call("c"):  # the slot came back when "a" was done: no wait
        pass
