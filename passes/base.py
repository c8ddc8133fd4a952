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

from lmc.ir import ProgramGraph, StepNode
from lmc.metrics import Metric
from lmc.runtime.context import RunContext
from lmc.runtime.data import Dataset
from lmc.runtime.evaluate import Evaluation, evaluate


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
        return evaluate(context, program, data.examples, data.inputs, self.metric, capture=capture)


def calls_per_run(program: ProgramGraph) -> int:
    """LM calls one run of the program makes (without repairs)."""
    return sum(1 for node in program.nodes() if isinstance(node, StepNode))


class Pass(Protocol):
    """IR -> IR against data and a metric. Implementations are frozen dataclasses."""

    name: ClassVar[str]

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        """At most how many LM calls `apply` makes: the budget check before a compile starts."""
        ...

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        """A new program; `program` itself is never changed."""
        ...
