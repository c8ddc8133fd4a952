"""`lmc.build(module)`: trace a module's `forward` into a checked `Program`."""

from __future__ import annotations

import inspect
import os
import typing
from typing import Any

from lmc.builder.location import python_span
from lmc.builder.modules import Module
from lmc.builder.signature import lm_type
from lmc.builder.trace import StepResult, Symbol, Trace
from lmc.compiler.program import Program
from lmc.diagnostics import Diagnostic, ProgramError, Span
from lmc.ir.lower import check
from lmc.runtime.prediction import Prediction
from lmc.signatures import FieldSpec
from lmc.syntax import tree as ast
from lmc.types import STR


def build(module: Module, *, name: str | None = None) -> Program:
    """Trace `module.forward` symbolically into a program; its parameter names are the inputs."""
    span = python_span()
    name = name or type(module).__name__
    forward_span = _definition_span(module, span)
    params = _parameters(module, forward_span)
    trace = Trace(module)
    with trace.active():
        result = module.forward(**{p.name: trace.input(p.name, p.type) for p in params})
    results, bindings = _outputs(trace, result, forward_span)
    signatures = tuple(ast.SignatureDecl(spec, spec.span) for spec in trace.signatures.values())
    functions = tuple(
        ast.FunctionDecl(function, forward_span) for function in trace.functions.values()
    )
    indexes = tuple(
        ast.IndexDecl(i.name, i.kind, i.path, i.text_field, forward_span)
        for i in trace.indexes.values()
    )
    body = (*trace.statements, ast.Return(bindings, forward_span))
    program = ast.ProgramDecl(name, params, results, body, forward_span)
    source = ast.Module((*signatures, *functions, *indexes, program), forward_span.file)
    checked = check(source, "", os.getcwd())
    return Program(checked.graphs[name])


def _definition_span(module: Module, fallback: Span) -> Span:
    try:
        forward = type(module).forward
        lines, line = inspect.getsourcelines(forward)
        file = inspect.getsourcefile(forward) or fallback.file
    except (OSError, TypeError):
        return fallback
    column = len(lines[0]) - len(lines[0].lstrip()) + 1
    return Span(file, line, column, line, len(lines[0].rstrip()) + 1)


def _parameters(module: Module, span: Span) -> tuple[FieldSpec, ...]:
    forward = module.forward
    try:
        hints = typing.get_type_hints(forward)
    except NameError:
        hints = {}
    params = []
    for parameter in inspect.signature(forward).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ProgramError(
                [
                    Diagnostic(
                        span,
                        f"forward() takes named inputs, not *{parameter.name}: "
                        "def forward(self, question): ...",
                    )
                ]
            )
        try:
            type_ = lm_type(hints[parameter.name]) if parameter.name in hints else STR
        except TypeError as error:
            raise ProgramError([Diagnostic(span, f"input '{parameter.name}': {error}")]) from None
        params.append(FieldSpec(parameter.name, type_, None, span))
    return tuple(params)


def _outputs(
    trace: Trace, result: Any, span: Span
) -> tuple[tuple[FieldSpec, ...], tuple[ast.Binding, ...]]:
    if isinstance(result, Prediction | dict):
        named = list(result.items())
    elif isinstance(result, StepResult):
        named = [(f, getattr(result, f)) for f in result.declared_outputs()]
    elif isinstance(result, Symbol):
        named = [(result._label, result)]
    else:
        raise ProgramError(
            [
                Diagnostic(
                    span,
                    "forward() must return its outputs by name: "
                    "lmc.Prediction(answer=pred.answer), a dict, or a step's result; "
                    f"found {type(result).__name__}",
                )
            ]
        )
    results, bindings = [], []
    for output, value in named:
        expr, type_ = trace.expr(value, span)
        results.append(FieldSpec(output, type_, None, span))
        bindings.append(ast.Binding(output, expr, span))
    return tuple(results), tuple(bindings)
