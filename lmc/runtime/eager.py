"""Calling steps and programs directly from Python, DSPy-style, on the current run context."""

from __future__ import annotations

from typing import Any

from lmc.backends.base import StepView
from lmc.ir.graph import ProgramGraph, StepParams
from lmc.runtime import executor
from lmc.runtime.context import RunContext, current_context
from lmc.runtime.data import coerce
from lmc.signatures import FieldSpec, ModuleKind, SignatureSpec


def run_step(
    signature: SignatureSpec,
    module: ModuleKind,
    inputs: dict[str, Any],
    context: RunContext | None = None,
) -> dict[str, Any]:
    """One step's typed outputs for `inputs` (every input field, by name)."""
    unknown = sorted(set(inputs) - {f.name for f in signature.inputs})
    if unknown:
        raise TypeError(
            f"{signature.display_name} has no input {', '.join(unknown)}; it takes "
            + ", ".join(f.name for f in signature.inputs)
        )
    values = coerce(signature.inputs, inputs, signature.display_name)
    view = StepView(signature, module, StepParams())
    name = signature.name or "step"
    return executor.call_step(context or current_context(), name, view, values)


def run_program(
    graph: ProgramGraph,
    fields: tuple[FieldSpec, ...],
    inputs: dict[str, Any],
    context: RunContext | None = None,
) -> dict[str, Any]:
    values = coerce(fields, inputs, graph.name)
    return executor.run(context or current_context(), graph, values)
