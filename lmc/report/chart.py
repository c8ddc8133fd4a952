"""The compile's chart: dev metric against cumulative LM calls, with every candidate a pass
scored, drawn by matplotlib as SVG to put inline in a page."""

from __future__ import annotations

import io
from collections.abc import Sequence

from markupsafe import Markup

from lmc.passes.record import PassRecord

KEPT, DROPPED, PROGRAM = "#2e7d32", "#9e9e9e", "#1565c0"


def metric_chart(records: Sequence[PassRecord], metric: str) -> Markup | None:
    """The chart as an `<svg>` element; None for a log without passes (nothing to draw).

    The program's line steps from the baseline to each pass's result at the LM calls spent
    when the pass ended; each candidate is a point at the calls spent when it was scored,
    filled where the pass kept it and hollow where it dropped it."""
    if not records:
        return None
    # Imported here: matplotlib takes a while to load, and only a report needs it.
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    line_x, line_y = [0], [records[0].metric_before]
    kept: list[tuple[int, float]] = []
    dropped: list[tuple[int, float]] = []
    start = 0
    for record in records:
        for candidate in record.candidates:
            point = (start + candidate.calls, candidate.score)
            (kept if candidate.kept else dropped).append(point)
        start += record.calls
        line_x.append(start)
        line_y.append(record.metric_after)

    # A fixed hash salt and no date: the same log draws the same bytes.
    with rc_context({"svg.hashsalt": "lmc-report", "svg.fonttype": "none"}):
        figure = Figure(figsize=(9, 3.8), layout="constrained")
        axes = figure.subplots()
        # Ids name the parts, so a reader of the page (and its tests) can find them.
        axes.step(line_x, line_y, where="post", color=PROGRAM, label="the program after each pass")
        axes.plot(line_x, line_y, "o", color=PROGRAM, markersize=4, gid="program-after-passes")
        for record, x, y in zip(records, line_x[1:], line_y[1:], strict=True):
            axes.annotate(record.name, (x, y), textcoords="offset points", xytext=(3, 5), size=8)
        if dropped:
            axes.scatter(
                *zip(*dropped, strict=True),
                facecolors="none",
                edgecolors=DROPPED,
                label="candidate dropped",
                gid="candidates-dropped",
            )
        if kept:
            axes.scatter(
                *zip(*kept, strict=True), color=KEPT, label="candidate kept", gid="candidates-kept"
            )
        axes.set_xlabel("LM calls spent by the compile's passes")
        axes.set_ylabel(f"dev {metric}")
        if _fraction(line_y, kept, dropped):
            axes.set_ylim(-0.05, 1.05)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    # matplotlib draws every label as text it escapes itself; the element alone goes inline.
    return Markup(svg[svg.index("<svg") :])


def _fraction(
    line: list[float], kept: list[tuple[int, float]], dropped: list[tuple[int, float]]
) -> bool:
    """Whether every score is a fraction (the builtin metrics'), so the axis shows 0 to 1."""
    scores = [*line, *(y for _, y in kept), *(y for _, y in dropped)]
    return all(0.0 <= y <= 1.0 for y in scores)
