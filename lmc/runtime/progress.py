"""Progress over a dataset, the same from the command line and from Python: a bar of records
done with the time left, on a terminal only (piped output and logs stay plain)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lmc.runtime.metrics import Metric

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def dataset_progress(err: Console) -> Progress:
    """A bar of records done, shown on a terminal only (piped output stays plain)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def counting(metric: Metric, advance: Callable[[], None]) -> Metric:
    """`metric`, advancing the progress bar per scored example (a metric that raises is
    reported by `evaluate`, naming the example)."""

    def score(example: Mapping[str, Any], prediction: Mapping[str, Any], trace: Any) -> Any:
        value = metric.score_fn(example, prediction, trace)
        advance()
        return value

    return replace(metric, score_fn=score)
