"""DSPy-shaped signatures in Python: a `Signature` subclass with annotated input and output fields
and its docstring as the instruction.

    class GenerateAnswer(lmc.Signature):
        \"\"\"Answer the question using only the retrieved context.\"\"\"
        context: list[str] = lmc.InputField(desc="Relevant passages.")
        question: str = lmc.InputField()
        answer: str = lmc.OutputField(desc="A short factual answer, a few words.")
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin

from lmc.builder.location import python_span
from lmc.diagnostics import Diagnostic, ProgramError, Span
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.syntax.parser import parse_signature_text
from lmc.types import BOOL, FLOAT, INT, STR, ListOf, LmType, OneOf, OptionalOf


@dataclass(frozen=True, slots=True)
class _FieldMarker:
    direction: Literal["input", "output"]
    desc: str | None


def InputField(*, desc: str | None = None, prefix: str | None = None) -> Any:
    """An input field of a `Signature`. `prefix` is accepted for DSPy compatibility and unused."""
    return _FieldMarker("input", desc)


def OutputField(*, desc: str | None = None, prefix: str | None = None) -> Any:
    """An output field of a `Signature`. `prefix` is accepted for DSPy compatibility and unused."""
    return _FieldMarker("output", desc)


class Signature:
    """Subclass to declare what one LM step does; the class docstring is the task instruction."""

    spec: ClassVar[SignatureSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.spec = _spec_of_class(cls, python_span())

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature with the same fields and another instruction (DSPy's API)."""
        return type(cls.__name__, (cls,), {"__doc__": instructions})


def _spec_of_class(cls: type[Signature], span: Span) -> SignatureSpec:
    try:
        hints = typing.get_type_hints(cls)
    except NameError as error:
        raise ProgramError(
            [Diagnostic(span, f"signature {cls.__name__}: cannot resolve a field type ({error})")]
        ) from None
    inherited = [b.spec for b in cls.__mro__[1:] if issubclass(b, Signature) and b is not Signature]
    inputs = list(inherited[0].inputs) if inherited else []
    outputs = list(inherited[0].outputs) if inherited else []
    problems: list[Diagnostic] = []
    own = [n for n in cls.__dict__ if isinstance(cls.__dict__[n], _FieldMarker)]
    for name in inspect.get_annotations(cls):
        if name not in own and not name.startswith("_"):
            problems.append(
                Diagnostic(
                    span,
                    f"signature {cls.__name__}: field '{name}' needs a value: "
                    f"{name}: ... = lmc.InputField() or lmc.OutputField()",
                )
            )
    for name in own:
        marker: _FieldMarker = cls.__dict__[name]
        try:
            type_ = lm_type(hints.get(name, str))
        except TypeError as error:
            problems.append(Diagnostic(span, f"signature {cls.__name__}, field '{name}': {error}"))
            type_ = STR
        field = FieldSpec(name, type_, marker.desc, span)
        (inputs if marker.direction == "input" else outputs).append(field)
    if problems:
        raise ProgramError(problems)
    doc = cls.__dict__.get("__doc__")
    instruction = (
        inspect.cleandoc(doc) if doc else (inherited[0].instruction if inherited else None)
    )
    return SignatureSpec(cls.__name__, tuple(inputs), tuple(outputs), instruction, span)


def lm_type(annotation: Any) -> LmType:
    """The lmc type of a Python annotation: str, int, float, bool, list[T], T | None, Literal."""
    simple = {str: STR, int: INT, float: FLOAT, bool: BOOL}
    if annotation in simple:
        return simple[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and len(args) == 1:
        return ListOf(lm_type(args[0]))
    if origin is Literal and args and all(isinstance(a, str) for a in args):
        return OneOf(tuple(args))
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return OptionalOf(lm_type(rest[0]))
    raise TypeError(
        "expected str, int, float, bool, list[T], T | None or Literal['a', ...]; "
        f"found {getattr(annotation, '__name__', annotation)!r}"
    )


def signature_spec(signature: type[Signature] | str | SignatureSpec) -> SignatureSpec:
    """Accept what DSPy accepts: a Signature class or a `"a, b -> c"` string."""
    if isinstance(signature, SignatureSpec):
        return signature
    if isinstance(signature, str):
        return parse_signature_text(signature, None, at=python_span())
    if (
        isinstance(signature, type)
        and issubclass(signature, Signature)
        and signature is not Signature
    ):
        return signature.spec
    raise TypeError(
        "expected a lmc.Signature subclass or a string such as 'question -> answer'; "
        f"found {signature!r}"
    )
