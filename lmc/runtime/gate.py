"""At most so many LM calls at once, a step's calls kept together where calls wait.

An in-process model runs one call at a time and keeps only the last prompt it read: a call whose
prompt begins as that one did skips evaluating the shared part (a step's instruction and demos).
Calls of different steps taking turns (independent steps of one record, records at different
steps) would each read their whole prompt again. So a freed slot goes to a waiting call of the
step that last had one, if any, else to the call that has waited longest. No call waits forever:
calls waiting for the same step are bounded by the records in flight.
"""

from __future__ import annotations

import threading
from types import TracebackType


class CallGate:
    def __init__(self, slots: int):
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: list[tuple[str, threading.Event]] = []  # in the order they came
        self._last_step: str | None = None

    @property
    def waiting(self) -> int:
        """How many calls wait for a slot."""
        with self._lock:
            return len(self._waiting)

    def call(self, step: str) -> _Slot:
        """Hold a slot for one call of `step` while the `with` block runs."""
        return _Slot(self, step)

    def _take(self, step: str) -> None:
        """Wait for a slot (none, when one is free and no call waits) and take it."""
        with self._lock:
            turn: threading.Event | None = None
            if self._free > 0 and not self._waiting:
                self._free -= 1
                self._last_step = step
            else:
                turn = threading.Event()
                self._waiting.append((step, turn))
        if turn is not None:
            try:
                turn.wait()
            except BaseException:  # Ctrl-C while an eager call waits: leave the line
                self._leave(step, turn)
                raise

    def _give_back(self) -> None:
        with self._lock:
            self._pass_on()

    def _leave(self, step: str, turn: threading.Event) -> None:
        with self._lock:
            if (step, turn) in self._waiting:
                self._waiting.remove((step, turn))
            else:  # its turn came as it left: the slot must not be lost with it
                self._pass_on()

    def _pass_on(self) -> None:
        """A freed slot, to the next call in line (the lock held)."""
        if not self._waiting:
            self._free += 1
            return
        same = (i for i, (step, _) in enumerate(self._waiting) if step == self._last_step)
        step, turn = self._waiting.pop(next(same, 0))
        self._last_step = step
        turn.set()  # the slot passes straight to it: no newcomer can take it first


class _Slot:
    """A gate's slot held by a `with` block (a plain class: every LM call makes one, and a
    generator-based context manager costs several times as much)."""

    __slots__ = ("_gate", "_step")

    def __init__(self, gate: CallGate, step: str):
        self._gate = gate
        self._step = step

    def __enter__(self) -> None:
        self._gate._take(self._step)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._gate._give_back()
