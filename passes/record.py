"""One line of a compile's pass log: what a pass bought (dev metric) and what it cost, and the
candidates it scored on the way."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CandidateScore:
    """One candidate a pass scored on dev: the points of the report's chart of dev metric
    against LM calls. A candidate dropped early in a race is scored on fewer examples."""

    label: str
    calls: int  # LM calls the pass had made when this score was known
    score: float
    examples: int  # how many dev examples `score` is the mean over
    kept: bool  # whether the pass kept it (the race's winner, when its gain held)
    detail: str | None = None  # what the candidate is, where that is short text (an instruction)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "calls": self.calls,
            "score": round(self.score, 4),
            "examples": self.examples,
            "kept": self.kept,
        }
        if self.detail is not None:
            data["detail"] = self.detail
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CandidateScore:
        """A candidate `to_json` wrote; `TypeError` or `KeyError` when it is not one."""
        found = cls(
            label=data["label"],
            calls=data["calls"],
            score=data["score"],
            examples=data["examples"],
            kept=data["kept"],
            detail=data.get("detail"),
        )
        numbers = (found.calls, found.score, found.examples)
        if not isinstance(found.label, str) or not all(_is_number(n) for n in numbers):
            raise TypeError(f"not a candidate score: {data}")
        return found


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
    # Every candidate the pass scored, in order; empty in artifacts written before lmc kept them.
    candidates: list[CandidateScore] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["candidates"] = [c.to_json() for c in self.candidates]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PassRecord:
        """A record `to_json` wrote; `TypeError` or `KeyError` when it is not one."""
        names = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in names})
        record.candidates = [CandidateScore.from_json(c) for c in data.get("candidates", [])]
        numbers = (
            record.metric_before,
            record.metric_after,
            record.calls,
            record.cached,
            record.prompt_tokens,
            record.completion_tokens,
            record.seconds,
            record.calls_per_run,
        )
        # Every field the report reads, checked here: a hand-edited artifact gets one error
        # naming the record, not a traceback from the page that formats it.
        well_formed = (
            isinstance(record.name, str)
            and isinstance(record.options, dict)
            and all(_is_number(n) for n in numbers)
            and isinstance(record.notes, list)
            and all(isinstance(note, str) for note in record.notes)
            and (record.gain is None or _is_interval(record.gain))
        )
        if not well_formed:
            raise TypeError(f"not a pass record: {data}")
        return record


def _is_interval(value: Any) -> bool:
    """A gain as `to_json` writes it: mean, low and high."""
    return isinstance(value, list) and len(value) == 3 and all(_is_number(n) for n in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
