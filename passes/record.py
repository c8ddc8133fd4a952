"""One line of a compile's pass log: what a pass bought (dev metric) and what it cost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PassRecord:
    name: str
    options: dict[str, Any]
    metric_before: float
    metric_after: float
    calls: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    calls_per_run: int
    notes: list[str] = field(default_factory=list)
    # The dev gain over the program before the pass, example by example: mean and the low and
    # high ends of its paired-bootstrap interval (None when the pass changed nothing).
    gain: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PassRecord:
        """A record `to_json` wrote; `TypeError` or `KeyError` when it is not one."""
        names = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in names})
        numbers = (record.metric_before, record.metric_after, record.calls, record.seconds)
        if not isinstance(record.name, str) or not all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
        ):
            raise TypeError(f"not a pass record: {data}")
        return record
