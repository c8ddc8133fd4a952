"""Choosing among candidate programs without wasting LM calls or trusting noise.

- `race`: successive halving. Every candidate is scored on a first small share of dev; the better
  half go on to the next share, twice as large; and so on until one is left or dev is spent.
  Calls go to the candidates still in the running, not to the clearly worse ones.
- `paired_gain`: how much better one program scores than another on the same examples, as the
  mean per-example difference with a paired-bootstrap interval. A pass keeps a change only when
  the interval's low end is above zero: a gain that is as likely noise as not is not a gain.

A race scores through the compile context, so every call is cached, counted and budgeted.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lmc.ir.graph import ProgramGraph
from lmc.ir.text import print_program
from lmc.passes.base import CompileContext
from lmc.runtime.data import Dataset
from lmc.runtime.evaluate import Evaluation

# Two-sided 90%: a kept change is better with about 95% confidence (the low end above zero).
LEVEL = 0.9
RESAMPLES = 2000
FIRST_SHARE = 8  # examples every candidate is scored on before any is dropped


# Below this many examples where the two programs score differently no interval means anything: a
# change that wins on each of four is what luck gives one time in sixteen, yet nearly every
# bootstrap resample agrees, the more so the more ties surround them.
MIN_EXAMPLES = 5


@dataclass(frozen=True)
class Gain:
    """The mean per-example score difference (after minus before) over `n` examples, `differing`
    of them not ties, and its paired-bootstrap interval at `level`."""

    mean: float
    low: float
    high: float
    n: int
    differing: int
    level: float = LEVEL

    def holds(self) -> bool:
        return self.differing >= MIN_EXAMPLES and self.low > 0

    def __str__(self) -> str:
        shown = f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
        if 0 < self.mean and self.differing < MIN_EXAMPLES:  # too few is why it does not hold
            return (
                f"{shown}, a difference on {self.differing} of {self.n} dev examples (too few to "
                f"tell: {MIN_EXAMPLES} at least)"
            )
        return shown

    def to_json(self) -> list[float]:
        return [round(self.mean, 4), round(self.low, 4), round(self.high, 4)]


def gain_between(context: CompileContext, before: ProgramGraph, after: ProgramGraph) -> Gain:
    """`after`'s gain over `before` on dev, both scored through the context. The bootstrap is
    seeded by the two programs, so whoever asks (a pass deciding, the pass log reporting) gets
    the same interval, and the log never contradicts the decision."""
    texts = f"{print_program(before)}\0{print_program(after)}"
    salt = hashlib.sha256(texts.encode("utf-8")).hexdigest()[:16]
    return paired_gain(
        context.score(before).scores, context.score(after).scores, context.rng(f"gain:{salt}")
    )


def paired_gain(
    before: Sequence[float], after: Sequence[float], rng: random.Random, level: float = LEVEL
) -> Gain:
    """The gain of `after` over `before`, example by example (both scored on the same examples,
    in the same order)."""
    if len(before) != len(after):
        raise ValueError("paired scores need the same examples on both sides")
    differences = [b - a for a, b in zip(before, after, strict=True)]
    if not differences:
        return Gain(0.0, 0.0, 0.0, 0, 0, level)
    n = len(differences)
    means = sorted(sum(rng.choices(differences, k=n)) / n for _ in range(RESAMPLES))
    tail = (1 - level) / 2
    low = means[math.floor(tail * (RESAMPLES - 1))]
    high = means[math.ceil((1 - tail) * (RESAMPLES - 1))]
    differing = sum(d != 0 for d in differences)
    return Gain(sum(differences) / n, low, high, n, differing, level)


@dataclass
class Contender:
    """A candidate in a race: its label (for the log), the program, and what it scored so far,
    by dev example."""

    label: str
    program: ProgramGraph
    detail: str | None = None  # what it is, where that is short text (an instruction)
    seen: dict[int, tuple[float, dict[str, Any] | None, str | None]] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(score for score, _, _ in self.seen.values()) / max(1, len(self.seen))

    def add(self, indexes: Sequence[int], evaluation: Evaluation) -> None:
        rows = zip(evaluation.scores, evaluation.predictions, evaluation.errors, strict=True)
        for index, row in zip(indexes, rows, strict=True):
            self.seen[index] = row

    def evaluation(self, size: int) -> Evaluation:
        """Its scores on all `size` examples, in their order (once it has seen them all)."""
        rows = [self.seen[i] for i in range(size)]
        return Evaluation(
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [[] for _ in rows]
        )


def shares(size: int, first: int = FIRST_SHARE) -> list[int]:
    """Where each round of a race ends: `first`, twice that, ... up to `size`."""
    if first < 1:
        raise ValueError(f"a race's first share is at least one example; found {first}")
    ends, end = [], min(first, size)
    while True:
        ends.append(end)
        if end >= size:
            return ends
        end = min(size, end * 2)


def race_runs(candidates: int, size: int, first: int = FIRST_SHARE) -> int:
    """At most how many program runs `race` makes: the budget's view of it."""
    runs, alive, start = 0, candidates, 0
    for end in shares(size, first):
        runs += alive * (end - start)
        start = end
        if alive == 1:
            return runs + (size - start)
        alive = math.ceil(alive / 2)
    return runs


def race(
    contenders: list[Contender],
    context: CompileContext,
    data: Dataset,
    who: str,
    first: int = FIRST_SHARE,
) -> Contender:
    """The best contender by successive halving on `data` (taken in a seeded order). The winner
    is scored on every example of `data`, and that score is the compile's: scoring the program
    on `data` again costs nothing."""
    order = list(range(len(data)))
    context.rng("race").shuffle(order)
    alive, start = list(contenders), 0
    for end in shares(len(data), first):
        _score(alive, context, data, order[start:end])
        start = end
        if len(alive) == 1:
            break
        alive.sort(key=lambda c: -c.mean)  # stable: of equal scores, the earlier candidate
        # Halved each round; once dev is spent, only the winner goes on, the rest logged.
        keep = 1 if end >= len(data) else math.ceil(len(alive) / 2)
        dropped, alive = alive[keep:], alive[:keep]
        listed = ", ".join(f"{c.label} {c.mean:.3f}" for c in dropped)
        for contender in dropped:
            context.candidate(
                contender.label,
                contender.mean,
                len(contender.seen),
                kept=False,
                detail=contender.detail,
            )
        context.say(f"{who}: after {end} dev examples, dropped {listed}")
    winner = alive[0]
    _score([winner], context, data, order[start:])
    context.remember(winner.program, data, winner.evaluation(len(data)))
    return winner


def settle(context: CompileContext, winner: Contender, *, kept: bool) -> None:
    """Record the race's winner, scored on all of dev, and whether the pass kept it."""
    context.candidate(winner.label, winner.mean, len(winner.seen), kept=kept, detail=winner.detail)


def _score(
    contenders: list[Contender], context: CompileContext, data: Dataset, indexes: list[int]
) -> None:
    if not indexes:
        return
    part = data.subset(sorted(indexes), f"{data.name} part")
    for contender in contenders:
        contender.add(sorted(indexes), context.score(contender.program, part))
