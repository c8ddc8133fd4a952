"""Ctrl-C in a notebook: code that runs in an event loop already has lmc's records run on a loop of
their own in another thread (`run_to_end`), and interrupting the caller stops that run at once,
without waiting for the LM call in flight nor running the records after it.

The LM is a `FakeLM` that holds q3's call until the test ends; Ctrl-C is a real SIGINT to the main
thread, sent once that call is held.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
from collections.abc import Callable, Iterator

import pytest
from programs import QA

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM

HELD_S = 30  # how long q3's call is held at most: a run that waits for it fails


@pytest.fixture
def ctrl_c() -> Iterator[Callable[[], None]]:
    """Send Ctrl-C to the main thread, as a notebook's interrupt does; meanwhile SIGINT raises
    KeyboardInterrupt even if the test runner was started with it ignored (in the background)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None
    yield lambda: signal.pthread_kill(main, signal.SIGINT)
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_in_a_notebook_stops_the_run_without_waiting_for_its_calls(
    ctrl_c: Callable[[], None],
) -> None:
    held, released = threading.Event(), threading.Event()
    asked: list[str] = []
    answered: list[str] = []

    def reply(request: LMRequest) -> str:
        question = re.findall(r"q\d+", request.messages[-1].content)[-1]
        asked.append(question)
        if question == "q3":
            held.set()
            released.wait(HELD_S)
        answered.append(question)
        return json.dumps({"answer": f"echo {question}"})

    context = lmc.context(FakeLM(reply), cache=False, concurrency=2)
    program = lmc.loads(QA)
    threading.Thread(target=lambda: held.wait(HELD_S) and ctrl_c(), daemon=True).start()

    async def cell() -> object:  # a notebook's cell: an event loop runs it
        return program.batch([{"question": f"q{i}"} for i in range(8)], context=context)

    loop = asyncio.new_event_loop()  # no asyncio.run: Ctrl-C raises in the cell, as in a notebook
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
        assert "q3" not in answered, "Ctrl-C came through only once the held call came back"
        assert "q7" not in asked, f"the run went on after Ctrl-C: {asked}"
    finally:
        released.set()
        loop.close()
