"""A step's learned block (`learned { instruction, demos, nearest pool }`) -> its `StepParams`.

What a learned block may say is checked here: demos name only the step's fields, and a nearest
pool has a whole `k`, a kind that ranks text, and demos that give an input to match on. Whether
steps sharing parameters agree is checked where steps are lowered (`lower_steps`).
"""

from __future__ import annotations

from lmc.diagnostics import Diagnostics, did_you_mean, quoted_list
from lmc.ir.graph import NEAREST_KINDS, Demo, NearestDemos, StepNode, StepParams
from lmc.syntax import tree as ast


def learned_params(learned: ast.Learned, step: StepNode, diagnostics: Diagnostics) -> StepParams:
    """The parameters `learned` gives `step`; what is wrong in it goes to `diagnostics`."""
    fields = step.demo_fields()
    pool = learned.nearest.demos if learned.nearest is not None else ()
    for demo in (*learned.demos, *pool):
        for name, _ in demo:
            if name not in fields:
                diagnostics.error(
                    learned.span,
                    f"demo field '{name}' is not a field of {step.signature.display_name}; "
                    f"expected {quoted_list(fields)}" + did_you_mean(name, fields),
                )
    return StepParams(
        learned.instruction,
        tuple(Demo(demo) for demo in learned.demos),
        nearest_pool(learned.nearest, step, diagnostics) if learned.nearest is not None else None,
    )


def nearest_pool(nearest: ast.Nearest, step: StepNode, diagnostics: Diagnostics) -> NearestDemos:
    """A step's nearest pool: `k` a whole number of at least 1, a kind that ranks text, and
    demos that give an input to match on."""
    k = nearest.k
    if isinstance(k, float) or k < 1:
        diagnostics.error(
            nearest.span,
            f"nearest takes how many demos to show each call, a whole number of at least 1; "
            f"found {k}",
        )
    if nearest.kind not in NEAREST_KINDS:
        diagnostics.error(
            nearest.span,
            f"unknown way to rank demos '{nearest.kind}'; expected "
            f"{quoted_list(NEAREST_KINDS)}" + did_you_mean(nearest.kind, NEAREST_KINDS),
        )
    if not nearest.demos:
        diagnostics.error(nearest.span, "a nearest pool needs at least one demo")
    inputs = {f.name for f in step.signature.inputs}
    for demo in nearest.demos:
        if not inputs & {name for name, _ in demo}:
            diagnostics.error(
                nearest.span,
                f"a demo of a nearest pool gives none of {step.signature.display_name}'s "
                f"inputs ({quoted_list(sorted(inputs))}), so it is never near anything",
            )
            break
    return NearestDemos(int(k), tuple(Demo(demo) for demo in nearest.demos), nearest.kind)
