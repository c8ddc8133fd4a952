"""Progress of long work (a dataset run, an evaluation, a compile's LM calls, an index build),
the same from the command line and from Python: how much is done, at what rate, and about how
long is left. On a terminal a live bar; elsewhere (a pipe, a log, CI) a plain line now and then,
so a long run in a log still says how far it got, and a short one says nothing extra."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lmc.runtime.metrics import Metric

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

PLAIN_EVERY = 10.0  # seconds between plain progress lines


class WorkProgress:
    """`done` of `total` `unit` (None: not known ahead), shown on `err` as it advances."""

    def __init__(
        self,
        err: Console,
        what: str,
        total: int | None,
        unit: str,
        *,
        every: float = PLAIN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.err, self.what, self.total, self.unit = err, what, total, unit
        self.every, self.clock = every, clock
        self.done = 0
        self._lock = threading.Lock()  # work is done on worker threads too
        self.started = self.last_line = clock()
        known = total is not None
        self.bar = Progress(
            TextColumn("{task.description}"),
            *(
                (BarColumn(), MofNCompleteColumn())
                if known
                else (TextColumn(f"{{task.completed}} {unit}"),)
            ),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn() if known else TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=not known,
            get_time=clock,
        )
        self.task = self.bar.add_task(what, total=total, rate="")

    @property
    def live(self) -> bool:
        """Whether it draws a live bar (a terminal), rather than plain lines."""
        return self.err.is_terminal

    def __rich__(self) -> RenderableType:
        # The bar inside another live display (the compile's table), on a terminal.
        return self.bar.get_renderable()

    def __enter__(self) -> WorkProgress:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.stop()

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self.done += amount
            now = self.clock()
            rate = f"{self.rate(now):.1f} {self.unit}/s"
            self.bar.update(self.task, completed=self.done, total=self.total, rate=rate)
            if not self.live and now - self.last_line >= self.every:
                self.last_line = now
                self.err.print(self.line(now))

    def expect(self, total: int) -> None:
        """The total, once it is known (a compile's projected LM calls)."""
        with self._lock:
            self.total = total
            self.bar.update(self.task, total=total)

    def describe(self, what: str) -> None:
        """A new description (what is being done now)."""
        self.what = what
        self.bar.update(self.task, description=what)

    def rate(self, now: float) -> float:
        """Work done a second, on average since the start."""
        return self.done / max(now - self.started, 1e-9)

    def line(self, now: float) -> str:
        """`eval QA: 40/100 records, 2.1/s, about 29s left`, the plain form."""
        rate = self.rate(now)
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{self.what}: {self.done}{of} {self.unit}, {rate:.1f}/s"
        if self.total is not None and rate > 0:
            left = max(0.0, (self.total - self.done) / rate)
            text += f", about {_duration(left)} left"
        return text


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def counting(metric: Metric, advance: Callable[[], None]) -> Metric:
    """`metric`, advancing the progress per scored example (an example the metric raises on
    is failed by `evaluate`, and caught up by the caller once all are done)."""

    def score(example: Mapping[str, Any], prediction: Mapping[str, Any], trace: Any) -> Any:
        value = metric.score_fn(example, prediction, trace)
        advance()
        return value

    return replace(metric, score_fn=score)
