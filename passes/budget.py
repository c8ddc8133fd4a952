"""The default pipeline, fitted to a budget of LM calls.

A user who names no pipeline asks lmc to do its best within the budget, so any budget works: the
default is tried from its most thorough form (more demo sets racing, more teacher runs, pruning
the demos that do not pay) down to its leanest, and the first that fits is the one run. Only a
budget below even the leanest form (scoring the program once on dev, and one demo set) is
refused. A pipeline the user spelled out is run as written, or refused when it cannot fit.
"""

from __future__ import annotations

from lmc.ir.graph import ProgramGraph
from lmc.passes.base import CompileContext, Pass
from lmc.passes.manager import projection
from lmc.passes.pipeline import DEFAULT_PLANS, parse_pipeline


def default_pipeline(
    program: ProgramGraph, context: CompileContext, budget: int | None
) -> tuple[str, list[Pass]]:
    """The most thorough form of the default that fits `budget` (any, without one), as text
    and as passes. When none fits, the leanest, which the caller then refuses."""
    for plan in DEFAULT_PLANS:
        passes = parse_pipeline(plan)
        if budget is None or projected(program, passes, context) <= budget:
            return plan, passes
    return DEFAULT_PLANS[-1], parse_pipeline(DEFAULT_PLANS[-1])


def projected(program: ProgramGraph, passes: list[Pass], context: CompileContext) -> int:
    return sum(calls for _, calls in projection(program, passes, context))
