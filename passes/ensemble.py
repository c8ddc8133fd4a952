"""`ensemble`: sample a step several times and take its most common answer, where that pays.

Majority voting over samples (self-consistency) lifts small models on questions with one right
answer, and costs a call per sample on every run. So a step is tried as an ensemble only where
its outputs can be voted on (`literal`, `bool`, numbers; a chain of thought's reasoning aside),
and kept only when its dev gain holds under the paired test *and* buys at least
`min_gain_per_call` per extra call a run makes: the log shows both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from lmc.ir.graph import ProgramGraph, StepNode, assemble
from lmc.ir.step_options import MAX_SAMPLES
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.options import CheckedOptions, option
from lmc.passes.selection import gain_between
from lmc.signatures import StepOptions
from lmc.types import BOOL, FLOAT, INT, LmType, OneOf, OptionalOf


@dataclass(frozen=True)
class EnsemblePass(CheckedOptions):
    name: ClassVar[str] = "ensemble"
    samples: int = option(5, low=2, high=MAX_SAMPLES)  # a step's `n`, as the language allows
    temperature: float = option(0.7, low=0, high=2)
    min_gain_per_call: float = 0.02

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        # At most: every step kept sampled, so each next candidate carries the earlier samples.
        total, largest = 0, program
        for key in votable_keys(program):
            largest = self.sampled(largest, key)
            total += len(context.dev) * calls_per_run(largest)
        return total

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        current = program
        for key in votable_keys(program):
            candidate = self.sampled(current, key)
            extra = calls_per_run(candidate) - calls_per_run(current)
            gain = gain_between(context, current, candidate)
            per_call = gain.mean / extra
            worth = gain.holds() and per_call >= self.min_gain_per_call
            scored = context.score(candidate)
            context.candidate(
                f"{key} sampled {self.samples} times", scored.score, len(scored.scores), kept=worth
            )
            context.say(
                f"{self.name}: {key} sampled {self.samples} times: dev gain {gain} for {extra} "
                f"more calls per run ({per_call:+.3f} a call): "
                + ("kept" if worth else f"not kept (needs {self.min_gain_per_call} a call)")
            )
            if worth:
                current = candidate
        return current

    def sampled(self, program: ProgramGraph, key: str) -> ProgramGraph:
        """`program` with every step reading parameters `key` sampled and voted."""
        nodes = [
            replace(node, options=self.voting(node.options))
            if isinstance(node, StepNode) and node.param_key == key
            else node
            for node in program.nodes()
        ]
        wires = [(u, w.source_field, v, w.target_field, w.span) for u, v, w in program.edges()]
        return assemble(program, nodes, wires)

    def voting(self, options: StepOptions) -> StepOptions:
        return replace(options, n=self.samples, temperature=self.temperature)


def votable_keys(program: ProgramGraph) -> list[str]:
    """The parameter keys of steps not yet sampled whose every declared output can be voted on."""
    keys = []
    for step in program.steps():
        if step.module == "react" or step.options.n > 1 or step.param_key in keys:
            continue
        if all(_votable(f.type) for f in step.signature.outputs):
            keys.append(step.param_key)
    return keys


def _votable(t: LmType) -> bool:
    if isinstance(t, OptionalOf):
        return _votable(t.inner)
    return isinstance(t, OneOf) or t in (BOOL, INT, FLOAT)
