"""`prune-demos`: drop the demos that do not help, to save tokens on every call.

Each demo is tried out in turn (last first); if the dev metric does not drop without it, it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lmc.ir.graph import ProgramGraph
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.demos import with_demos


@dataclass(frozen=True)
class PruneDemosPass:
    name: ClassVar[str] = "prune-demos"

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        demos = sum(len(p.demos) for p in program.params.values())
        return (demos + 1) * len(context.dev) * calls_per_run(program)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        current = program
        score = context.score(current).score
        dropped = 0
        for key in sorted(program.params):
            for index in reversed(range(len(program.params[key].demos))):
                demos = list(current.params[key].demos)
                del demos[index]
                candidate = with_demos(current, {key: demos})
                candidate_score = context.score(candidate).score
                better = candidate_score >= score
                label = f"{key} without demo {index + 1}"
                context.candidate(label, candidate_score, len(context.dev), kept=better)
                if better:
                    current, score, dropped = candidate, candidate_score, dropped + 1
        kept = sum(len(p.demos) for p in current.params.values())
        context.say(f"prune-demos: dropped {dropped} demos, kept {kept}")
        return current
