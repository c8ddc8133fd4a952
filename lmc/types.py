"""The value types that flow between steps: `str`, `int`, `float`, `bool`, `list[T]`, `T?` and
`literal["a", "b"]`.

Types are frozen values; `str(t)` is the canonical `.lmp` spelling and `accepts` is the one rule for
what may flow along an edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lmc.strings import quote

ScalarName = Literal["str", "int", "float", "bool"]
SCALAR_NAMES: tuple[ScalarName, ...] = ("str", "int", "float", "bool")


@dataclass(frozen=True, slots=True)
class Scalar:
    name: ScalarName

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ListOf:
    item: LmType

    def __str__(self) -> str:
        return f"list[{self.item}]"


@dataclass(frozen=True, slots=True)
class OptionalOf:
    inner: LmType

    def __str__(self) -> str:
        return f"{self.inner}?"


@dataclass(frozen=True, slots=True)
class OneOf:
    """`literal["a", "b"]`: exactly one of the given strings."""

    choices: tuple[str, ...]

    def __str__(self) -> str:
        return "literal[" + ", ".join(quote(c) for c in self.choices) + "]"


# One tool an agent may call: its name, and its parameters' names and types in order.
ToolShape = tuple[str, tuple[tuple[str, "LmType"], ...]]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What an agent's LM writes each iteration: `{"tool": NAME, "args": {...}}`, one call of one
    of `tools` with its arguments typed. The runtime makes this type for an agent's own step; a
    program never declares a field of it."""

    tools: tuple[ToolShape, ...]

    def __str__(self) -> str:
        return "tool_call[" + ", ".join(name for name, _ in self.tools) + "]"


@dataclass(frozen=True, slots=True)
class Nothing:
    """The element type of `[]` before it meets the list it flows into."""

    def __str__(self) -> str:
        return "nothing"


@dataclass(frozen=True, slots=True)
class Unknown:
    """The type of something already reported as an error; it fits anywhere, to avoid cascades."""

    def __str__(self) -> str:
        return "unknown"


LmType = Scalar | ListOf | OptionalOf | OneOf | ToolCall | Nothing | Unknown

STR = Scalar("str")
INT = Scalar("int")
FLOAT = Scalar("float")
BOOL = Scalar("bool")
PASSAGES = ListOf(STR)
EMPTY_LIST = ListOf(Nothing())
UNKNOWN = Unknown()


def accepts(target: LmType, source: LmType) -> bool:
    """Whether a value of type `source` may flow into a field of type `target`.

    Any value flows into `str` (it is rendered as text); there is no silent wrapping of a
    single value into a list, and an optional value never flows into a required non-text field.
    """
    if target == source or isinstance(source, Nothing | Unknown) or isinstance(target, Unknown):
        return True
    if target == STR:
        return True
    if isinstance(target, OptionalOf):
        inner_source = source.inner if isinstance(source, OptionalOf) else source
        return accepts(target.inner, inner_source)
    if target == FLOAT and source == INT:
        return True
    if isinstance(target, ListOf) and isinstance(source, ListOf):
        return accepts(target.item, source.item)
    if isinstance(target, OneOf) and isinstance(source, OneOf):
        return set(source.choices) <= set(target.choices)
    return False


def join(left: LmType, right: LmType) -> LmType | None:
    """The narrowest type both sides flow into without turning a value into text, or None.

    Used where values of two types meet: the items of a list, the two sides of `+`.
    """
    if isinstance(left, Nothing | Unknown) or left == right:
        return right
    if isinstance(right, Nothing | Unknown):
        return left
    if isinstance(left, OptionalOf) or isinstance(right, OptionalOf):
        inner = join(_required(left), _required(right))
        return None if inner is None else OptionalOf(inner)
    if isinstance(left, ListOf) and isinstance(right, ListOf):
        item = join(left.item, right.item)
        return None if item is None else ListOf(item)
    if {left, right} == {INT, FLOAT}:
        return FLOAT
    if isinstance(left, OneOf) and isinstance(right, OneOf):
        return OneOf(left.choices + tuple(c for c in right.choices if c not in left.choices))
    if (isinstance(left, OneOf) and right == STR) or (isinstance(right, OneOf) and left == STR):
        return STR
    return None


def _required(t: LmType) -> LmType:
    return t.inner if isinstance(t, OptionalOf) else t


def describe(t: LmType) -> str:
    """A type in words for error messages."""
    if isinstance(t, ListOf) and isinstance(t.item, Nothing):
        return "an empty list"
    return str(t)
