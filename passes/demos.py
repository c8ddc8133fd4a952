"""Where a step's demos come from, for every pass that chooses demos.

Two sources, as in DSPy. A train record that names every field of a step is a *labeled* demo for
it (reasoning aside: a record has none, and a chain of thought's demo shows it as not supplied).
The teacher's runs on train whose prediction passes the metric give a *bootstrapped* demo to
every step they went through, that step's own inputs and outputs, reasoning included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lmc.ir.graph import Demo, ProgramGraph, StepNode
from lmc.passes.base import CompileContext
from lmc.signatures import REASONING

# Labeled demos a step's pool takes beside its bootstrapped ones (DSPy's `max_labeled_demos`).
LABELED_PER_STEP = 8


def labeled_fields(step: StepNode) -> list[str]:
    """The fields a train record must name to be a labeled demo of `step`."""
    return [n for n in step.demo_fields() if n != REASONING]


def labeled_demos(step: StepNode, records: Sequence[dict[str, Any]]) -> list[Demo]:
    """The distinct labeled demos of `step` among `records`, in their order."""
    names = labeled_fields(step)
    found: list[Demo] = []
    for record in records:
        if all(n in record for n in names):
            demo = Demo(tuple((n, record[n]) for n in names))
            if demo not in found:
                found.append(demo)
    return found


def passing_runs(
    program: ProgramGraph, context: CompileContext, who: str, max_train: int, threshold: float
) -> dict[str, list[Demo]]:
    """Bootstrapped demos by parameter key, from the teacher's runs on (a seeded sample of at
    most `max_train`) train examples whose score reached `threshold`. The one teacher run of
    every pass that bootstraps demos."""
    order = list(range(len(context.train)))
    context.rng(f"{who}:train").shuffle(order)
    sample = context.train.subset(order[:max_train])
    run = context.score(program, sample, capture=True, teacher=True)
    # A record's calls come in the order its threads finished; taken in program order instead,
    # copies of one step (an unrolled loop) give their demos in the same order every run.
    position = {step.id: index for index, step in enumerate(program.steps())}
    found: dict[str, list[Demo]] = {}
    passing = 0
    for score, calls in zip(run.scores, run.calls, strict=True):
        if score < threshold:
            continue
        passing += 1
        for call in sorted(calls, key=lambda call: position[call.step]):
            node = program.node(call.step)
            assert isinstance(node, StepNode)
            demo = Demo(tuple({**call.inputs, **call.outputs}.items()))
            if demo not in found.setdefault(node.param_key, []):
                found[node.param_key].append(demo)
    context.say(f"{who}: {passing} of {len(sample)} teacher runs passed the metric")
    return found


def demo_pool(
    program: ProgramGraph,
    context: CompileContext,
    who: str,
    *,
    max_train: int,
    threshold: float,
    labeled: int = LABELED_PER_STEP,
) -> dict[str, list[Demo]]:
    """Each step's bootstrapped demos, then its first `labeled` labeled ones not among them."""
    found = passing_runs(program, context, who, max_train, threshold)
    for step in program.steps():
        demos = labeled_demos(step, context.train.examples)[:labeled]
        if demos:
            pool = found.setdefault(step.param_key, [])
            pool += [d for d in demos if d not in pool]
    return found


def with_demos(program: ProgramGraph, demos: dict[str, list[Demo]]) -> ProgramGraph:
    """A copy of `program` whose steps (by parameter key) have these demos."""
    result = program.copy()
    for key, chosen in demos.items():
        result.params[key] = replace(result.params[key], demos=tuple(chosen))
    return result


def largest_with_demos(program: ProgramGraph, max_demos: int) -> ProgramGraph:
    """The program at its largest after a pass that may give every step `max_demos` demos
    (or leave it the more it has, should the pass keep nothing): what later passes are
    projected on (placeholder demos, never run)."""
    keys = {step.param_key for step in program.steps()}
    most = {key: max(max_demos, len(program.params[key].demos)) for key in keys}
    return with_demos(program, {key: [Demo(())] * count for key, count in most.items()})
