"""Calling steps and programs directly from Python, DSPy-style, on the current run context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lmc.backends.base import StepView
from lmc.ir.graph import ProgramGraph, StepNode, StepParams
from lmc.runtime import executor, steps
from lmc.runtime.context import RunContext, current_context
from lmc.runtime.data import coerce
from lmc.signatures import NO_OPTIONS, FieldSpec, ModuleKind, SignatureSpec, StepOptions


def run_step(
    signature: SignatureSpec,
    module: ModuleKind,
    inputs: dict[str, Any],
    context: RunContext | None = None,
    options: StepOptions = NO_OPTIONS,
) -> dict[str, Any]:
    """One step's typed outputs for `inputs` (every input field, by name)."""
    unknown = sorted(set(inputs) - {f.name for f in signature.inputs})
    if unknown:
        raise TypeError(
            f"{signature.display_name} has no input {', '.join(unknown)}; it takes "
            + ", ".join(f.name for f in signature.inputs)
        )
    values = coerce(signature.inputs, inputs, signature.display_name)
    name = signature.name or "step"
    run = context or current_context()
    if module == "react":
        from lmc.runtime.agent import run_agent

        node = StepNode(name, signature, module, name, options)
        return run_agent(run, node, StepParams(), values, None)
    view = StepView(signature, module, StepParams())
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
        run = replace(run, concurrency=max(1, threads))

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
