"""A pass's options with their bounds, declared once beside each option.

A pipeline's parser checks that an option is a number; only the pass knows that `candidates=0`
races nothing, `minibatch=0` never grows, or `samples=1` votes on one sample. Out of bounds is an
input error raised when the pass is made, from a pipeline string or in Python, before any LM
call: not a traceback after the teacher's calls are spent, nor a program written with options
it cannot be read back with.

    @dataclass(frozen=True)
    class MyPass(CheckedOptions):
        candidates: int = option(4, low=1)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, TypeVar

from lmc.passes.pipeline import PipelineError

T = TypeVar("T", int, float)


def option(default: T, *, low: float | None = None, high: float | None = None) -> T:
    """A dataclass field with `default`, allowed from `low` to `high` (both included)."""
    bounds = {"low": low, "high": high}
    found: T = dataclasses.field(default=default, metadata=bounds)
    return found


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


class CheckedOptions:
    """Base of a pass whose options have bounds: checks them when the pass is made."""

    name: ClassVar[str]  # the pass's name, for the message

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            low, high = f.metadata.get("low"), f.metadata.get("high")
            value = getattr(self, f.name)
            if (low is not None and value < low) or (high is not None and value > high):
                raise PipelineError(
                    f"{self.name}: option {f.name} is {bounds_text(low, high)}; found {value:g}"
                )
