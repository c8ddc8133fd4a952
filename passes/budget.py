"""The default pipeline, fitted to a budget of LM calls.

A user who names no pipeline asks lmc to do its best within the budget, so any budget works: the
default is tried from its most thorough form (more demo sets racing, more teacher runs, pruning
the demos that do not pay) down to its leanest, and the first that fits is the one run. Only a
budget below even the leanest form (scoring the program once on dev, and one demo set) is
refused. A pipeline the user spelled out is run as written, or refused when it cannot fit.

Projections count the calls a program's steps make when every reply fits its types. A model that
often needs a repair call makes more, so the compile fits again once the baseline has been scored
on dev (`measured_overrun`): with one reply in five repaired, a form projected at 126 calls
costs about 151, and the leaner form that fits runs to its end instead of being stopped by the
budget in its last pass, with that pass's calls spent for nothing.
"""

from __future__ import annotations

import math

from lmc.ir.graph import ProgramGraph
from lmc.passes.base import CompileContext, Pass, calls_per_run
from lmc.passes.manager import projection
from lmc.passes.pipeline import DEFAULT_PLANS, parse_pipeline
from lmc.runtime.evaluate import Evaluation


def default_pipeline(
    program: ProgramGraph, context: CompileContext, budget: int | None, overrun: float = 1.0
) -> tuple[str, list[Pass]]:
    """The most thorough form of the default that fits `budget` (any, without one), as text
    and as passes, each form's projection taken `overrun` times. When none fits, the leanest:
    the caller refuses it if even its projection does not fit, and otherwise runs it until the
    budget stops it."""
    for plan in DEFAULT_PLANS:
        passes = parse_pipeline(plan)
        if budget is None or math.ceil(overrun * projected(program, passes, context)) <= budget:
            return plan, passes
    return DEFAULT_PLANS[-1], parse_pipeline(DEFAULT_PLANS[-1])


def projected(program: ProgramGraph, passes: list[Pass], context: CompileContext) -> int:
    return sum(calls for _, calls in projection(program, passes, context))


def measured_overrun(program: ProgramGraph, baseline: Evaluation) -> float:
    """How many LM requests a run of `program` made on dev (repairs included, cache hits too:
    a cached compile fits as the first one did), per request projected; at least 1."""
    projected_requests = len(baseline.scores) * calls_per_run(program)
    made = sum(cost.calls + cost.cached for cost in baseline.costs)
    return max(1.0, made / projected_requests) if projected_requests else 1.0
