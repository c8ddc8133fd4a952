"""Calling steps and programs directly from Python, DSPy-style, on the current run context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmc.backends.base import StepView
from lmc.ir.graph import ProgramGraph, StepNode, StepParams
from lmc.runtime import executor, steps
from lmc.runtime.context import RunContext, current_context
from lmc.runtime.data import coerce
from lmc.runtime.nearest import shown_params
from lmc.signatures import NO_OPTIONS, FieldSpec, ModuleKind, SignatureSpec, StepOptions
from lmc.types import STR


def run_step(
    signature: SignatureSpec,
    module: ModuleKind,
    inputs: dict[str, Any],
    context: RunContext | None = None,
    options: StepOptions = NO_OPTIONS,
    params: StepParams | None = None,
) -> dict[str, Any]:
    """One step's typed outputs for `inputs` (every input field, by name), with the step's
    learned instruction and demos when it has some."""
    names = [f.name for f in signature.inputs]
    unknown = sorted(set(inputs) - set(names))
    missing = [name for name in names if name not in inputs]
    if unknown or missing:
        problem = f"has no input {', '.join(unknown)}" if unknown else f"needs {', '.join(missing)}"
        raise TypeError(f"{signature.display_name} {problem}; it takes {', '.join(names)}")
    # Any value flows into a `str` field, as in a program (it is rendered as text): DSPy's
    # `"context, question -> answer"` takes the retrieved passages, a list, as `context`.
    typed_fields = tuple(f for f in signature.inputs if f.type != STR)
    typed = coerce(typed_fields, inputs, signature.display_name)
    values = {name: typed.get(name, inputs[name]) for name in names}
    learned = shown_params(params or StepParams(), signature, values)
    name = signature.name or "step"
    run = context or current_context()
    if module == "react":
        from lmc.runtime.agent import run_agent

        node = StepNode(name, signature, module, name, options)
        return run_agent(run, node, learned, values, None)
    view = StepView(signature, module, learned)
    return steps.run_step(run, name, view, options, values)


def run_batch(
    graph: ProgramGraph,
    fields: tuple[FieldSpec, ...],
    examples: list[Mapping[str, Any]],
    threads: int | None,
    context: RunContext | None = None,
) -> list[dict[str, Any] | None]:
    """Every example's outputs, in order; None where its run failed."""
    records = [coerce(fields, e, f"example {i + 1}") for i, e in enumerate(examples)]
    run = context or current_context()
    if threads is not None:
        run = run.derived(concurrency=max(1, threads))

    async def collect() -> list[dict[str, Any] | None]:
        return [r.outputs async for r in executor.run_records(run, graph, records)]

    return executor.run_to_end(collect)


def run_program(
    graph: ProgramGraph,
    fields: tuple[FieldSpec, ...],
    inputs: dict[str, Any],
    context: RunContext | None = None,
) -> dict[str, Any]:
    values = coerce(fields, inputs, graph.name)
    return executor.run(context or current_context(), graph, values)
