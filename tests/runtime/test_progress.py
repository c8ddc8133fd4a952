"""Progress of long work: a live bar with counts, rate and time left on a terminal; a plain line
now and then elsewhere (a log says how far a long run got; a short run says nothing extra)."""

from __future__ import annotations

import io

from rich.console import Console

from lmc.runtime.progress import WorkProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_a_log_gets_a_line_with_count_rate_and_time_left_every_ten_seconds() -> None:
    err, out = plain()
    clock = Clock()
    with WorkProgress(err, "eval QA", 100, "examples", clock=clock) as progress:
        for _ in range(40):
            clock.now += 0.25
            progress.advance()

    assert out.getvalue().splitlines() == ["eval QA: 40/100 examples, 4.0/s, about 15s left"]


def test_a_short_run_prints_no_progress_line() -> None:
    err, out = plain()
    clock = Clock()
    with WorkProgress(err, "QA", 5, "records", clock=clock) as progress:
        for _ in range(5):
            clock.now += 0.1
            progress.advance()

    assert out.getvalue() == ""


def test_work_of_unknown_size_says_its_count_and_rate() -> None:
    err, out = plain()
    clock = Clock()
    with WorkProgress(err, "reading corpus.jsonl", None, "passages", clock=clock) as progress:
        clock.now = 12.0
        progress.advance(6000)

    assert out.getvalue() == "reading corpus.jsonl: 6000 passages, 500.0/s\n"


def test_a_terminal_shows_a_bar_with_count_rate_and_time_left() -> None:
    out = io.StringIO()
    err = Console(file=out, force_terminal=True, width=120, color_system=None)
    clock = Clock()
    progress = WorkProgress(err, "compile QA", 0, "LM calls", clock=clock)
    progress.expect(200)
    for _ in range(50):
        clock.now += 0.2
        progress.advance()

    err.print(progress)  # as the compile's live table shows it
    shown = out.getvalue()
    assert "compile QA" in shown
    assert "50/200" in shown
    assert "5.0 LM calls/s" in shown
    assert "0:00:30" in shown  # 150 calls left at 5 a second
