"""`lmc.build(module)`: trace a module's `forward` into a checked `Program`."""

from __future__ import annotations

import inspect
import os
import re
import typing
from collections.abc import Callable
from typing import Any

from lmc.builder.location import python_span
from lmc.builder.modules import Module
from lmc.builder.signature import lm_type
from lmc.builder.trace import StepResult, Symbol, Trace
from lmc.compiler.program import Program
from lmc.diagnostics import Diagnostic, ProgramError, Span
from lmc.ir.lower import check
from lmc.runtime.prediction import Prediction
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.lark_parser import KEYWORDS
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
        ast.IndexDecl(i.name, i.kind, i.path, i.text_field, forward_span, bound=i.bound)
        for i in trace.indexes.values()
    )
    body = (*trace.statements, ast.Return(bindings, forward_span))
    program = ast.ProgramDecl(name, params, results, body, forward_span)
    source = ast.Module((*signatures, *functions, *indexes, program), forward_span.file)
    _refuse_unspellable_names(source)
    checked = check(source, "", os.getcwd())
    return Program(checked.graphs[name])


def _refuse_unspellable_names(source: ast.Module) -> None:
    """Every name the user gave (signatures and their fields, functions, indexes, the
    program's inputs and outputs) must be one `.lmp` can spell: a built program is printed as
    `.lmp` to be saved, compiled or run on a cluster, and text that names a field `input`
    would not read back."""
    problems = []
    for decl in source.declarations:
        for what, name, span in _NAMES_OF[type(decl)](decl):
            if not (_SPELLABLE.fullmatch(name) and name not in KEYWORDS):
                why = "a keyword of .lmp" if name in KEYWORDS else "ASCII letters, digits and _"
                problems.append(
                    Diagnostic(
                        span,
                        f"{what} '{name}' is not a name .lmp can spell ({why}); a built program "
                        "is saved and compiled as .lmp text: rename it",
                    )
                )
    if problems:
        raise ProgramError(problems)


# What a name is, the name, and where it was given.
_Named = tuple[str, str, Span]


def _signature_names(kind: str, signature: SignatureSpec, span: Span) -> list[_Named]:
    owner = f"{kind} {signature.display_name}'s field"
    fields = [(owner, f.name, span) for f in (*signature.inputs, *signature.outputs)]
    return [(kind, signature.name, span), *fields] if signature.name else fields


_SPELLABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMES_OF: dict[type[Any], Callable[[Any], list[_Named]]] = {
    ast.SignatureDecl: lambda d: _signature_names("signature", d.signature, d.span),
    ast.FunctionDecl: lambda d: _signature_names("function", d.function.signature, d.span),
    ast.IndexDecl: lambda d: [("index", d.name, d.span)],
    ast.ProgramDecl: lambda d: [
        ("program", d.name, d.span),
        *(("input", f.name, d.span) for f in d.params),
        *(("output", f.name, d.span) for f in d.results),
    ],
}


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
