"""`instruction-search`: an LM proposes instructions for each step; the best on dev is kept.

Proposals are grounded on the step's signature, a summary of the train data and a few worked
examples; each candidate is scored on the same dev minibatch as the current instruction, and a
candidate must beat it to replace it. Proposals and scoring both go through the runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from lmc.backends.base import StepView
from lmc.ir.graph import ProgramGraph, StepNode, StepParams
from lmc.passes.base import CompileContext, calls_per_run
from lmc.runtime.data import Dataset
from lmc.runtime.steps import StepFailed, call_step
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import STR

PROPOSER = SignatureSpec(
    "ProposeInstruction",
    (
        FieldSpec("task", STR, "The step: its fields and its current instruction."),
        FieldSpec("data", STR, "What the training data looks like."),
        FieldSpec("examples", STR, "Worked examples of the step's inputs and outputs."),
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
class InstructionSearchPass:
    name: ClassVar[str] = "instruction-search"
    candidates: int = 4
    minibatch: int = 8

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        keys = len(program.params)
        batch = min(self.minibatch, len(context.dev))
        search = keys * (self.candidates + (self.candidates + 1) * batch * calls_per_run(program))
        # Scored on part of dev, the result is new to the pass manager, which scores it on all
        # of dev after the pass; on all of dev, those scores are the ones the search paid for.
        rescore = len(context.dev) * calls_per_run(program) if batch < len(context.dev) else 0
        return search + rescore

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        batch = self.batch(context)
        current = program
        for key in sorted(program.params):
            step = next(s for s in program.steps() if s.param_key == key)
            start = best_score = context.score(current, batch).score
            for number, proposal in enumerate(self.proposals(step, current, context)):
                candidate = current.copy()
                candidate.params[key] = replace(candidate.params[key], instruction=proposal)
                score = context.score(candidate, batch).score
                context.say(f"instruction-search: {key} candidate {number + 1} scores {score:.3f}")
                if score > best_score:
                    current, best_score = candidate, score
            if best_score > start:
                context.say(
                    f"instruction-search: {key} now reads: {current.params[key].instruction}"
                )
            else:
                # Said either way: a learned instruction that stays did not just change, and a
                # step without one should not leave the reader guessing what became of it.
                context.say(
                    f"instruction-search: {key} keeps its instruction; no candidate scored above "
                    f"{start:.3f}"
                )
        return current

    def batch(self, context: CompileContext) -> Dataset:
        """The dev examples candidates are scored on: the dev set itself when `minibatch` covers
        it, so the compile's scores of it (the baseline, the result) are shared, not paid twice."""
        if self.minibatch >= len(context.dev):
            return context.dev
        indexes = list(range(len(context.dev)))
        context.rng(self.name).shuffle(indexes)
        return context.dev.subset(sorted(indexes[: self.minibatch]), "dev minibatch")

    def proposals(
        self, step: StepNode, program: ProgramGraph, context: CompileContext
    ) -> list[str]:
        params = program.params[step.param_key]
        inputs = {
            "task": _describe_step(step, params),
            "data": _summarize(context.train),
            "examples": _examples(context.train, limit=3),
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


def _examples(data: Dataset, limit: int) -> str:
    shown: list[str] = []
    for example in data.examples[:limit]:
        fields: dict[str, Any] = {
            k: v for k, v in example.items() if isinstance(v, str | int | float)
        }
        shown.append(json.dumps(fields, ensure_ascii=False)[:600])
    return "\n".join(shown)
