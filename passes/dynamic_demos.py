"""`dynamic-demos`: a pool of worked examples per step, each input shown the ones nearest it.

A few fixed demos fit a task with many labels badly: with 77 intents, four demos show at most
four of them, and rarely the ones a given input needs. Shown the train examples most like the
input instead (kNN few-shot, as in DSPy's `KNNFewShot`), a small model often only has to copy
the right label. So each step gets a pool (`nearest K by KIND { demo ... }` in its learned
block), and every call is shown its fixed demos and then the `k` pool demos whose inputs are
nearest its own (`lmc/runtime/nearest.py`).

Demos are ranked by `kind`: `auto` (the default) is `embeddings` where `lmc[embeddings]` is
installed and `bm25` elsewhere; the program names the kind it got. A step's pool is the train
examples that name its fields (at most `pool` of them, a seeded choice, in train order); a step
no train example names (an intermediate one) gets the demos of the teacher's runs on train that
passed the metric, as `bootstrap-demos` finds them. The program with the pools is kept only when
its dev gain over the program as it was holds under the paired test; the log says which, with the
gain. Choosing demos costs no LM call: a run costs what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from lmc.ir.graph import NEAREST_KINDS, Demo, NearestDemos, ProgramGraph
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.demos import labeled_demos, passing_runs
from lmc.passes.options import CheckedOptions, option
from lmc.passes.pipeline import PipelineError
from lmc.passes.selection import gain_between
from lmc.retrieval.nearest import best_kind


@dataclass(frozen=True)
class DynamicDemosPass(CheckedOptions):
    name: ClassVar[str] = "dynamic-demos"
    k: int = option(3, low=1)
    pool: int = option(256, low=1)
    kind: str = "auto"  # embeddings where lmc[embeddings] is installed, else bm25
    max_train: int = 16  # teacher runs, only when a step has no labeled examples
    threshold: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in (*NEAREST_KINDS, "auto"):
            kinds = " or ".join(NEAREST_KINDS)
            raise PipelineError(f"{self.name}: kind is auto, {kinds}; found '{self.kind}'")

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        teacher = 0
        if self.unlabeled(program, context):
            teacher = min(self.max_train, len(context.train)) * calls_per_run(program)
        return teacher + len(context.dev) * calls_per_run(program)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        pools = self.labeled(program, context)
        if self.unlabeled(program, context):
            for key, demos in self.bootstrap(program, context).items():
                pools.setdefault(key, demos[: self.pool])
        if not pools:
            context.say(
                f"{self.name}: no train example names a step's fields and no teacher run passed "
                "the metric; no pool to draw from"
            )
            return program
        kind = best_kind() if self.kind == "auto" else self.kind
        candidate = program.copy()
        for key, demos in pools.items():
            pool = NearestDemos(self.k, tuple(demos), kind)
            candidate.params[key] = replace(candidate.params[key], nearest=pool)
        gain = gain_between(context, program, candidate)
        sizes = ", ".join(f"{key}: {len(demos)} demos" for key, demos in pools.items())
        tried = f"pools ({sizes}), each input shown its {self.k} nearest by {kind}"
        scored = context.score(candidate)
        context.candidate(tried, scored.score, len(scored.scores), kept=gain.holds())
        if gain.holds():
            context.say(f"{self.name}: {tried}: dev gain {gain}: kept")
            return candidate
        context.say(
            f"{self.name}: {tried}: dev gain {gain} does not hold; the program is kept as it was"
        )
        return program

    def labeled(self, program: ProgramGraph, context: CompileContext) -> dict[str, list[Demo]]:
        """Pools of train examples, by parameter key, for the steps whose fields they name: at
        most `pool` of them, a seeded choice kept in train order."""
        found: dict[str, list[Demo]] = {}
        for step in program.steps():
            demos = labeled_demos(step, context.train.examples)
            if not demos or step.param_key in found:
                continue
            if len(demos) > self.pool:
                chosen = context.rng(f"{self.name}:pool").sample(range(len(demos)), self.pool)
                demos = [demos[i] for i in sorted(chosen)]
            found[step.param_key] = demos
        return found

    def unlabeled(self, program: ProgramGraph, context: CompileContext) -> bool:
        """Whether some step's fields are named by no train example (so the teacher runs)."""
        return any(not labeled_demos(step, context.train.examples) for step in program.steps())

    def bootstrap(self, program: ProgramGraph, context: CompileContext) -> dict[str, list[Demo]]:
        """Demos by parameter key from the teacher's runs on train that passed the metric."""
        return passing_runs(program, context, self.name, self.max_train, self.threshold)
