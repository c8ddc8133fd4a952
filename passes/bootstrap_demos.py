"""`bootstrap-demos`: worked examples for every step, from runs that got the right answer.

The teacher runs the program on train examples; each run whose prediction passes the metric
gives a demo to every step it went through (that step's inputs and outputs, reasoning included).
Train examples that name a step's fields themselves are labeled demos for it, as in DSPy
(`passes/demos.py`).
Several demo sets (seeded random choices from both) race on dev (`passes/selection.py`): all are
scored on a few examples, the better half go on to more, until one is left. The winner is kept
only if its gain over the program as it was holds under a paired test on all of dev.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lmc.ir.graph import Demo, ProgramGraph
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.demos import LABELED_PER_STEP, demo_pool, largest_with_demos, with_demos
from lmc.passes.options import CheckedOptions, option
from lmc.passes.selection import Contender, gain_between, race, race_runs, settle


@dataclass(frozen=True)
class BootstrapDemosPass(CheckedOptions):
    name: ClassVar[str] = "bootstrap-demos"
    max_demos: int = option(4, low=1)
    candidates: int = option(4, low=1)
    max_train: int = option(16, low=1)
    labeled: int = option(LABELED_PER_STEP, low=0)
    threshold: float = 1.0

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        teacher = min(self.max_train, len(context.train)) * calls_per_run(program)
        students = race_runs(self.candidates, len(context.dev))
        return teacher + students * calls_per_run(self.projected_program(program, context))

    def projected_program(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        return largest_with_demos(program, self.max_demos)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        found = self.bootstrap(program, context)
        if not any(found.values()):
            context.say(
                "bootstrap-demos: no teacher run passed the metric and no train example "
                "names a step's fields; no demos added"
            )
            return program
        rng = context.rng(self.name)
        contenders = []
        for number in range(self.candidates):
            chosen: dict[str, list[Demo]] = {}
            for key, demos in found.items():
                count = min(self.max_demos, len(demos))
                chosen[key] = demos[:count] if number == 0 else rng.sample(demos, count)
            contenders.append(Contender(f"demo set {number + 1}", with_demos(program, chosen)))
        say = context.say
        winner = race(contenders, context, context.dev, self.name)
        gain = gain_between(context, program, winner.program)
        settle(context, winner, kept=gain.holds())
        if gain.holds():
            say(f"{self.name}: {winner.label} kept: dev gain {gain}")
            return winner.program
        say(
            f"{self.name}: {winner.label} won the race, but its dev gain {gain} does not hold; "
            "the program is kept as it was"
        )
        return program

    def bootstrap(self, program: ProgramGraph, context: CompileContext) -> dict[str, list[Demo]]:
        """Demos by parameter key: the teacher's passing runs, then labeled train records."""
        return demo_pool(
            program,
            context,
            self.name,
            max_train=self.max_train,
            threshold=self.threshold,
            labeled=self.labeled,
        )
