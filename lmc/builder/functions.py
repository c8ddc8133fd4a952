"""`@lmc.function` (and `@lmc.tool`): a typed Python function as a step of a Python program.

Called while `lmc.build` traces `forward`, the function becomes a call node of the program (as
`call NAME(...)` in `.lmp`): its parameters' annotations type its inputs, its return annotation
its results (a dataclass or NamedTuple gives several, read as attributes; anything else one,
`result`), its docstring describes it. Called anywhere else it is the plain function.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, overload

from lmc.builder.location import python_span
from lmc.builder.signature import lm_type
from lmc.builder.trace import active_trace
from lmc.diagnostics import Span
from lmc.runtime.functions import remember
from lmc.signatures import FieldSpec, FunctionSpec, SignatureSpec
from lmc.types import STR, LmType

RESULT = "result"  # the one result of a function whose return type is not a record


class Function:
    """A Python function a program calls as a step."""

    def __init__(self, function: Callable[..., Any], name: str | None = None):
        functools.update_wrapper(self, function)
        self.function = function
        self.spec = function_spec(function, name, python_span())
        remember(self.spec.target, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        trace = active_trace()
        if trace is None:
            return self.function(*args, **kwargs)
        try:
            bound = inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.spec.name}(): {error}") from None
        return trace.function(self.spec, dict(bound.arguments), python_span())

    def __repr__(self) -> str:
        return f"lmc.function({self.spec.target})"


@overload
def function(fn: Callable[..., Any], /) -> Function: ...
@overload
def function(*, name: str | None = None) -> Callable[[Callable[..., Any]], Function]: ...
def function(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Function | Callable[[Callable[..., Any]], Function]:
    """`@lmc.function` or `@lmc.function(name="Evaluate")`."""
    if fn is not None:
        return Function(fn, name)
    return lambda f: Function(f, name)


tool = function  # an agent's tools are functions too


def function_spec(function: Callable[..., Any], name: str | None, span: Span) -> FunctionSpec:
    try:
        hints = typing.get_type_hints(function)
    except NameError:
        hints = {}
    inputs = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"{function.__qualname__}: a function step takes named parameters, "
                f"not *{parameter.name}"
            )
        inputs.append(FieldSpec(parameter.name, _type(hints, parameter.name, function), None, span))
    signature = SignatureSpec(
        name or function.__name__,
        tuple(inputs),
        _results(hints.get("return"), function, span),
        inspect.getdoc(function),
        span,
    )
    return FunctionSpec(f"{function.__module__}:{function.__qualname__}", signature)


def _type(hints: dict[str, Any], name: str, function: Callable[..., Any]) -> LmType:
    if name not in hints:
        return STR
    try:
        return lm_type(hints[name])
    except TypeError as error:
        raise TypeError(f"{function.__qualname__}: '{name}': {error}") from None


def _results(annotation: Any, function: Callable[..., Any], span: Span) -> tuple[FieldSpec, ...]:
    """A record type's fields (dataclass, NamedTuple), else one `result`."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        fields = typing.get_type_hints(annotation)
        names = [f.name for f in dataclasses.fields(annotation)]
    elif (
        isinstance(annotation, type)
        and issubclass(annotation, tuple)
        and hasattr(annotation, "_fields")
    ):
        fields = typing.get_type_hints(annotation)
        names = list(annotation._fields)
    else:
        hints = {RESULT: annotation} if annotation is not None else {}
        return (FieldSpec(RESULT, _type(hints, RESULT, function), None, span),)
    return tuple(FieldSpec(n, _type(fields, n, function), None, span) for n in names)
