"""`bootstrap-demos`: worked examples for every step, from runs that got the right answer.

The teacher runs the program on train examples; each run whose prediction passes the metric
gives a demo to every step it went through (that step's inputs and outputs, reasoning included).
Train examples that name a step's fields themselves are labelled demos for it, as in DSPy.
Several demo sets (seeded random choices from both) race on dev (`passes/selection.py`): all are
scored on a few examples, the better half go on to more, until one is left. The winner is kept
only if its gain over the program as it was holds under a paired test on all of dev.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from lmc.ir.graph import Demo, ProgramGraph, StepNode
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.options import CheckedOptions, option
from lmc.passes.selection import Contender, gain_between, race, race_runs, settle
from lmc.signatures import REASONING


@dataclass(frozen=True)
class BootstrapDemosPass(CheckedOptions):
    name: ClassVar[str] = "bootstrap-demos"
    max_demos: int = option(4, low=1)
    candidates: int = option(4, low=1)
    max_train: int = option(16, low=1)
    labeled: int = 8
    threshold: float = 1.0

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        teacher = min(self.max_train, len(context.train)) * calls_per_run(program)
        students = race_runs(self.candidates, len(context.dev))
        return teacher + students * calls_per_run(self.projected_program(program, context))

    def projected_program(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        return largest_with_demos(program, self.max_demos)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        found = self.bootstrap(program, context)
        for key, demos in self.labeled_demos(program, context).items():
            pool = found.setdefault(key, [])
            pool += [d for d in demos if d not in pool]
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

    def labeled_demos(
        self, program: ProgramGraph, context: CompileContext
    ) -> dict[str, list[Demo]]:
        """Train examples as demos for the steps whose input and output fields they name (an
        agent's, only with the trajectory that got there)."""
        found: dict[str, list[Demo]] = {}
        for step in program.steps():
            names = labelled_fields(step)
            usable = [e for e in context.train.examples if all(n in e for n in names)]
            demos = [Demo(tuple((n, e[n]) for n in names)) for e in usable[: self.labeled]]
            if demos:
                found.setdefault(step.param_key, demos)
        return found

    def bootstrap(self, program: ProgramGraph, context: CompileContext) -> dict[str, list[Demo]]:
        """Demos by parameter key, from the teacher's passing runs on train examples."""
        return passing_runs(program, context, self.name, self.max_train, self.threshold)


def passing_runs(
    program: ProgramGraph, context: CompileContext, who: str, max_train: int, threshold: float
) -> dict[str, list[Demo]]:
    """Demos by parameter key from the teacher's runs on (a seeded sample of at most
    `max_train`) train examples whose score reached `threshold`: every step a passing run went
    through gets that step's inputs and outputs. The one teacher run of every pass that
    bootstraps demos."""
    order = list(range(len(context.train)))
    context.rng(f"{who}:train").shuffle(order)
    sample = context.train.subset(order[:max_train])
    run = context.score(program, sample, capture=True, teacher=True)
    found: dict[str, list[Demo]] = {}
    passing = 0
    for score, calls in zip(run.scores, run.calls, strict=True):
        if score < threshold:
            continue
        passing += 1
        for call in calls:
            node = program.node(call.step)
            assert isinstance(node, StepNode)
            demo = Demo(tuple({**call.inputs, **call.outputs}.items()))
            if demo not in found.setdefault(node.param_key, []):
                found[node.param_key].append(demo)
    context.say(f"{who}: {passing} of {len(sample)} teacher runs passed the metric")
    return found


def labelled_fields(step: StepNode) -> list[str]:
    """The fields a train example must name to be a demo of `step` (its reasoning aside: a
    labelled record has none, and a chain of thought's demo shows it as not supplied)."""
    return [n for n in step.demo_fields() if n != REASONING]


def with_demos(program: ProgramGraph, demos: dict[str, list[Demo]]) -> ProgramGraph:
    """A copy of `program` whose steps (by parameter key) have these demos."""
    result = program.copy()
    for key, chosen in demos.items():
        result.params[key] = replace(result.params[key], demos=tuple(chosen))
    return result


def largest_with_demos(program: ProgramGraph, max_demos: int) -> ProgramGraph:
    """The program at its largest after a pass that may give every step `max_demos` demos:
    what later passes are projected on (placeholder demos, never run)."""
    keys = {step.param_key for step in program.steps()}
    return with_demos(program, {key: [Demo(())] * max_demos for key in keys})
