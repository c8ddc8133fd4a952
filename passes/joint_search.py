"""`joint-search`: instructions and demo sets chosen together, in the spirit of MIPROv2, within
the budget.

For every step it gathers the candidates the two single-minded passes would: instruction
proposals grounded on the step and the data (`instruction-search`), and demo sets from passing
teacher runs and labeled records (`bootstrap-demos`), each list starting with what the step has
now. Optuna's TPE sampler then searches the combinations: each trial picks one instruction and
one demo set per step and scores them on a minibatch of dev (a different one each trial, so no
minibatch is fitted); TPE learns which choices score well across trials. The combinations with
the best mean over their trials race on all of dev, and the winner is kept only when its gain
over the program holds under the paired test. Every proposal, demo set and trial is in the log
(and so in the artifact), with its score.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from lmc.errors import InputError
from lmc.ir.graph import Demo, ProgramGraph, StepParams
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.bootstrap_demos import BootstrapDemosPass
from lmc.passes.demos import demo_pool, largest_with_demos
from lmc.passes.instruction_search import TIPS, InstructionSearchPass
from lmc.passes.options import CheckedOptions, option
from lmc.passes.selection import Contender, gain_between, race, race_runs, settle

# A choice per step: (its parameter key, index of its instruction, index of its demo set).
Choice = tuple[tuple[str, int, int], ...]


class OptunaMissing(InputError):
    """`joint-search` asked for without Optuna installed."""


@dataclass(frozen=True)
class JointSearchPass(CheckedOptions):
    name: ClassVar[str] = "joint-search"
    # proposals per step, besides the step's own instruction (one per tip)
    instructions: int = option(3, low=0, high=len(TIPS))
    demo_sets: int = 3  # demo sets per step, besides the step's own demos
    max_demos: int = option(4, low=1)
    trials: int = option(12, low=1)
    minibatch: int = option(8, low=1)
    finalists: int = option(3, low=1)
    max_train: int = option(16, low=1)

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        keys = len(program.params)
        largest = self.projected_program(program, context)
        batch = min(self.minibatch, len(context.dev))
        teacher = min(self.max_train, len(context.train)) * calls_per_run(program)
        search = self.trials * batch + race_runs(self.finalists, len(context.dev))
        return keys * self.instructions + teacher + search * calls_per_run(largest)

    def projected_program(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        return largest_with_demos(program, self.max_demos)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        optuna = _optuna()
        instructions = self.instruction_candidates(program, context)
        demo_sets = self.demo_set_candidates(program, context)
        keys = sorted(program.params)
        sampler = optuna.samplers.TPESampler(seed=context.seed, n_startup_trials=4)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        order = list(range(len(context.dev)))
        context.rng(f"{self.name}:minibatches").shuffle(order)
        batch = min(self.minibatch, len(context.dev))
        results: dict[Choice, list[float]] = defaultdict(list)
        for trial_number in range(self.trials):
            trial = study.ask()
            choice: Choice = tuple(
                (
                    key,
                    trial.suggest_categorical(f"{key}:instruction", _indexes(instructions[key])),
                    trial.suggest_categorical(f"{key}:demos", _indexes(demo_sets[key])),
                )
                for key in keys
            )
            start = (trial_number * batch) % len(order)
            indexes = sorted((order + order)[start : start + batch])
            part = context.dev.subset(indexes, f"dev minibatch {trial_number + 1}")
            candidate = self.combined(program, choice, instructions, demo_sets)
            score = context.score(candidate, part).score
            study.tell(trial, score)
            results[choice].append(score)
            context.candidate(
                f"trial {trial_number + 1}: {_label(choice)}", score, len(indexes), kept=False
            )
            context.say(
                f"{self.name}: trial {trial_number + 1}: {_label(choice)} scores {score:.3f} "
                f"on {len(indexes)} dev examples"
            )
        ranked = sorted(results, key=lambda c: -sum(results[c]) / len(results[c]))
        contenders = [
            Contender(_label(choice), self.combined(program, choice, instructions, demo_sets))
            for choice in ranked[: self.finalists]
        ]
        winner = race(contenders, context, context.dev, self.name)
        gain = gain_between(context, program, winner.program)
        kept = gain.holds() and winner.program != program
        settle(context, winner, kept=kept)
        if kept:
            context.say(f"{self.name}: {winner.label} kept: dev gain {gain}")
            return winner.program
        context.say(
            f"{self.name}: the best combination, {winner.label}, has dev gain {gain}, which "
            "does not hold; the program is kept as it was"
        )
        return program

    def instruction_candidates(
        self, program: ProgramGraph, context: CompileContext
    ) -> dict[str, list[str | None]]:
        """Each step's own instruction (None: its signature's), then the proposals."""
        # No proposer at instructions=0: the search is over demo sets alone.
        proposer = InstructionSearchPass(self.instructions) if self.instructions else None
        found: dict[str, list[str | None]] = {}
        for key in sorted(program.params):
            step = next(s for s in program.steps() if s.param_key == key)
            own = program.params[key].instruction
            proposed = proposer.proposals(step, program, context) if proposer else []
            proposals = [p for p in proposed if p != own]
            found[key] = [own, *proposals]
            for number, proposal in enumerate(proposals, 1):
                context.say(f"{self.name}: {key} instruction {number}: {proposal}")
        return found

    def demo_set_candidates(
        self, program: ProgramGraph, context: CompileContext
    ) -> dict[str, list[tuple[Demo, ...]]]:
        """Each step's own demos, then seeded samples from bootstrapped and labeled demos."""
        threshold = BootstrapDemosPass.threshold
        pool = demo_pool(program, context, self.name, max_train=self.max_train, threshold=threshold)
        rng = context.rng(f"{self.name}:demos")
        found: dict[str, list[tuple[Demo, ...]]] = {}
        for key in sorted(program.params):
            own = program.params[key].demos
            sets: list[tuple[Demo, ...]] = [own]
            demos = pool.get(key, [])
            for number in range(self.demo_sets):
                count = min(self.max_demos, len(demos))
                chosen = tuple(demos[:count] if number == 0 else rng.sample(demos, count))
                if chosen and chosen not in sets:
                    sets.append(chosen)
            found[key] = sets
            context.say(f"{self.name}: {key} has {len(sets) - 1} demo sets from {len(demos)} demos")
        return found

    def combined(
        self,
        program: ProgramGraph,
        choice: Choice,
        instructions: dict[str, list[str | None]],
        demo_sets: dict[str, list[tuple[Demo, ...]]],
    ) -> ProgramGraph:
        result = program.copy()
        for key, instruction, demos in choice:
            result.params[key] = replace(
                result.params[key] if key in result.params else StepParams(),
                instruction=instructions[key][instruction],
                demos=demo_sets[key][demos],
            )
        return result


def _indexes(candidates: list[Any]) -> list[int]:
    return list(range(len(candidates)))


def _label(choice: Choice) -> str:
    """`gen: instruction 2, demo set 1`; 0 is what the step had."""

    def one(index: int, what: str) -> str:
        return f"its own {what}" if index == 0 else f"{what} {index}"

    return "; ".join(
        f"{key}: {one(i, 'instruction')}, {one(d, 'demo set')}" for key, i, d in choice
    )


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise OptunaMissing(
            "joint-search searches with Optuna: pip install 'lmc[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
