"""What every pass sees and promises.

A pass is a frozen dataclass whose fields are its options (`bootstrap-demos{max_demos=4}`). It
maps a program graph to a new one, given an explicit `CompileContext`; it reaches an LM only
through the runtime in that context, so every call is cached, counted against the budget, and
traced. The pass manager verifies the graph before and after every pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from lmc.ir.graph import ProgramGraph, StepNode
from lmc.ir.text import print_program
from lmc.runtime.context import RunContext
from lmc.runtime.data import Dataset
from lmc.runtime.evaluate import Evaluation, evaluate
from lmc.runtime.metrics import Metric


@dataclass
class CompileContext:
    """Everything a pass may use; nothing else is global."""

    run: RunContext
    teacher: RunContext
    train: Dataset
    dev: Dataset
    metric: Metric
    seed: int = 0
    say: Callable[[str], None] = field(default=lambda message: None)
    # Told of every candidate a pass scores: (label, mean score, examples, kept, detail). The pass
    # manager records them with the LM calls spent so far, for the report's chart.
    on_candidate: Callable[[str, float, int, bool, str | None], None] = field(
        default=lambda *scored: None
    )
    # Scores already paid for in this compile, by (program, data, teacher): passes re-score the
    # program they were given, and without an LM cache (--no-cache) that would cost real calls.
    # Each entry holds its dataset, so the id in the key cannot be reused by another one.
    _scores: dict[tuple[str, int, bool], tuple[Dataset, Evaluation]] = field(
        default_factory=dict, repr=False
    )
    # A metric that fails on an example is said once, not at every candidate it scores.
    _metric_failure_said: bool = field(default=False, repr=False)

    def candidate(
        self, label: str, score: float, examples: int, *, kept: bool, detail: str | None = None
    ) -> None:
        """Record a candidate the pass scored: its mean over `examples` dev examples, and
        whether the pass kept it."""
        self.on_candidate(label, score, examples, kept, detail)

    def known_score(self, program: ProgramGraph) -> Evaluation | None:
        """The program's dev score if this compile already paid for it, else None: what may be
        shown without another LM call."""
        found = self._scores.get((print_program(program), id(self.dev), False))
        return None if found is None else found[1]

    def rng(self, salt: str) -> random.Random:
        """A random source for one decision of one pass: the same seed gives the same choices."""
        return random.Random(f"{self.seed}:{salt}")

    def score(
        self,
        program: ProgramGraph,
        data: Dataset | None = None,
        *,
        capture: bool = False,
        teacher: bool = False,
    ) -> Evaluation:
        data = data if data is not None else self.dev
        context = self.teacher if teacher else self.run
        key = (print_program(program), id(data), teacher)
        if key in self._scores:
            known = self._scores[key][1]
            if known.calls or not capture:
                return known
        found = evaluate(context, program, data.examples, data.inputs, self.metric, capture=capture)
        self._scores[key] = (data, found)
        if found.metric_failed and not self._metric_failure_said:
            self._metric_failure_said = True
            self.say(f"{found.errors[found.metric_failed[0]]}; each example it fails on scores 0")
        return found

    def remember(self, program: ProgramGraph, data: Dataset, evaluation: Evaluation) -> None:
        """A score of `program` on `data` a pass put together from parts (a race's rounds), so
        scoring it on `data` again costs nothing."""
        self._scores[(print_program(program), id(data), False)] = (data, evaluation)


def calls_per_run(program: ProgramGraph) -> int:
    """At most how many LM calls one run of the program makes (without repairs)."""
    return sum(node.most_calls for node in program.nodes() if isinstance(node, StepNode))


class Pass(Protocol):
    """IR -> IR against data and a metric. Implementations are frozen dataclasses."""

    name: ClassVar[str]

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        """At most how many LM calls `apply` makes: the budget check before a compile starts.
        A pass that can grow the program (more demos) also has `projected_program(program,
        context)`: the largest program it may return, on which later passes are projected. A
        pass whose result answers every input as its given program did (it only removes work
        that reaches no output, or that repeats an identical request) says so with a class
        attribute `keeps_outputs = True`: its result keeps the given program's dev score where
        every dev example ran clean, rather than costing a run of dev under `--no-cache` that
        its projection of 0 calls did not count (see `manager._carried_score`)."""
        ...

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        """A new program; `program` itself is never changed."""
        ...
