"""`instruction-search`: an LM proposes instructions for each step; the best on dev is kept.

Proposals are grounded on the step's signature, a summary of the train data and a few worked
examples: train records cut to the step's own fields where they name them all, else the records
as they are, said to be the whole program's (a step inside a chain sees neither the program's
question nor its answer as such). They race on dev (`passes/selection.py`): each is scored on
`minibatch` examples, the better half go on to twice as many, until one is left; the winner
replaces the step's instruction only if its gain over the current one holds under a paired test
on all of dev. Proposals and scoring both go through the runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from lmc.backends.base import StepView
from lmc.ir.graph import ProgramGraph, StepNode, StepParams
from lmc.passes.base import CompileContext, calls_per_run
from lmc.passes.demos import labeled_demos
from lmc.passes.options import CheckedOptions, option
from lmc.passes.selection import Contender, gain_between, race, race_runs, settle
from lmc.runtime.data import Dataset
from lmc.runtime.steps import StepFailed, call_step
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import STR

PROPOSER = SignatureSpec(
    "ProposeInstruction",
    (
        FieldSpec("task", STR, "The step: its fields and its current instruction."),
        FieldSpec("data", STR, "What the training data looks like."),
        FieldSpec(
            "examples",
            STR,
            "Worked examples: the step's own inputs and outputs, or, where the data does not "
            "name them, the whole program's.",
        ),
        FieldSpec("tip", STR, "A direction to take."),
    ),
    (FieldSpec("instruction", STR, "One clear instruction for the step, in two sentences."),),
    "Write a better task instruction for a language-model step, so that it gets the right "
    "outputs from its inputs.",
)

TIPS = (
    "Be precise and brief.",
    "Say exactly what a good output looks like.",
    "Tell the model to use only the facts it is given.",
    "Ask for step-by-step care before answering.",
    "Name the most common mistake and how to avoid it.",
    "Write it as a short expert persona and a task.",
)


@dataclass(frozen=True)
class InstructionSearchPass(CheckedOptions):
    name: ClassVar[str] = "instruction-search"
    candidates: int = option(4, low=1, high=len(TIPS))  # one proposal per tip
    minibatch: int = option(8, low=1)

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        keys = len(program.params)
        runs = race_runs(self.candidates, len(context.dev), self.minibatch)
        return keys * (self.candidates + runs * calls_per_run(program))

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        current = program
        for key in sorted(program.params):
            step = next(s for s in program.steps() if s.param_key == key)
            proposals = self.proposals(step, current, context)
            if not proposals:
                context.say(f"{self.name}: no proposal for {key}; it keeps its instruction")
                continue
            contenders = []
            for number, proposal in enumerate(proposals, 1):
                candidate = current.copy()
                candidate.params[key] = replace(candidate.params[key], instruction=proposal)
                contenders.append(Contender(f"{key} candidate {number}", candidate, proposal))
            winner = race(contenders, context, context.dev, self.name, self.minibatch)
            gain = gain_between(context, current, winner.program)
            settle(context, winner, kept=gain.holds())
            if gain.holds():
                current = winner.program
                context.say(
                    f"{self.name}: {key} now reads (dev gain {gain}): "
                    f"{current.params[key].instruction}"
                )
            else:
                # Said either way: a learned instruction that stays did not just change, and a
                # step without one should not leave the reader guessing what became of it.
                context.say(
                    f"{self.name}: {key} keeps its instruction; the best candidate's dev gain "
                    f"{gain} does not hold"
                )
        return current

    def proposals(
        self, step: StepNode, program: ProgramGraph, context: CompileContext
    ) -> list[str]:
        params = program.params[step.param_key]
        inputs = {
            "task": _describe_step(step, params),
            "data": _summarize(context.train),
            "examples": _examples(step, context.train, limit=3),
        }
        found: list[str] = []
        for tip in TIPS[: self.candidates]:
            try:
                outputs = call_step(
                    context.teacher,
                    "propose-instruction",
                    StepView(PROPOSER, "predict"),
                    {**inputs, "tip": tip},
                )
            except StepFailed:
                continue
            text = " ".join(str(outputs["instruction"]).split())
            if text and text not in found:
                found.append(text)
        return found


def _describe_step(step: StepNode, params: StepParams) -> str:
    fields = [
        f"input {f.name} ({f.type}){': ' + f.desc if f.desc else ''}" for f in step.signature.inputs
    ]
    fields += [
        f"output {f.name} ({f.type}){': ' + f.desc if f.desc else ''}"
        for f in step.signature.outputs
    ]
    instruction = params.instruction or step.signature.instruction or "(none)"
    return "\n".join([f"Current instruction: {instruction}", *fields])


def _summarize(data: Dataset) -> str:
    """A few facts about the data, computed, so no LM call is spent on it."""
    keys = sorted({k for example in data.examples for k in example})
    lengths = {
        k: sum(len(str(e.get(k, "")).split()) for e in data.examples) / max(1, len(data))
        for k in keys
    }
    parts = ", ".join(f"{k} (about {lengths[k]:.0f} words)" for k in keys)
    return f"{len(data)} examples with fields {parts}."


def _examples(step: StepNode, data: Dataset, limit: int) -> str:
    own = [dict(demo.fields) for demo in labeled_demos(step, data.examples)]
    chosen = own or list(data.examples)
    shown: list[str] = [] if own else ["(the whole program's inputs and outputs)"]
    for example in chosen[:limit]:
        fields: dict[str, Any] = {
            k: v for k, v in example.items() if isinstance(v, str | int | float)
        }
        shown.append(json.dumps(fields, ensure_ascii=False)[:600])
    return "\n".join(shown)
