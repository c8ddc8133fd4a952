"""Output field types as the shapes an LM is held to and a reply is checked against: JSON Schema,
pydantic models, and the text a value is shown as in a prompt."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model

from lmc.backends.base import REPLY_TOKENS
from lmc.signatures import REASONING, FieldSpec
from lmc.types import BOOL, FLOAT, INT, STR, ListOf, LmType, OneOf, OptionalOf, Scalar, ToolCall

# Limits for a model that is held to the schema while decoding: a small model left free can
# repeat itself inside one string or list until it runs out of tokens.
MAX_TEXT = 400
MAX_ITEMS = 16
# A chain of thought needs more room: at 400 characters a quarter of Qwen2.5-Coder-1.5B's GSM8K
# chains were cut mid-sum, at 1,000 none were. llama-cpp-python's server refuses a grammar whose
# repetition goes much past 1,000 (it drops the connection), so this is as far as it can go.
MAX_REASONING = 1000
# Written as plain text before the reply's object (the json backend's chain of thought), a
# model works the problem through and writes more: DSPy's GSM8K chains on Qwen2.5-Coder-1.5B ran
# to 502 characters at the median, 1,937 at most (232 replies). A held model may write this
# many; the first line that opens with `{` begins the object, so the braces of LaTeX
# (`\frac{1}{2}`) or of a quoted object inside a line do not.
MAX_PLAIN_REASONING = 2000


# A held reply gets the tokens its bounds need, up to this many. A model looping on digits
# writes one token per character, so a chain of thought at its bound overran 512 tokens and left
# the JSON unclosed. Capped: a list of long strings would ask for thousands, and a prompt and
# reply longer than a server's context are cut short (llama.cpp) or refused (vLLM).
MOST_REPLY_TOKENS = 2048
# The longest numbers llama.cpp's JSON Schema grammar lets a model write: a sign and 16 digits;
# for a float, 16 more after the point and an exponent of 16.
_SCALAR_CHARS = {"integer": 17, "number": 52, "boolean": 5, "null": 4}


def text_bound(f: FieldSpec) -> int:
    """The most characters a held model may write into a text field."""
    return MAX_REASONING if f.name == REASONING else MAX_TEXT


def json_schema(t: LmType, bounded: bool = False) -> dict[str, Any]:
    schema = _SCHEMAS.get(type(t))
    return schema(t, bounded) if schema else {}


_JSON_TYPES: dict[Scalar, str] = {STR: "string", INT: "integer", FLOAT: "number", BOOL: "boolean"}


def _scalar_schema(t: Scalar, bounded: bool) -> dict[str, Any]:
    schema = {"type": _JSON_TYPES[t]}
    return {**schema, "maxLength": MAX_TEXT} if bounded and t == STR else schema


def _list_schema(t: ListOf, bounded: bool) -> dict[str, Any]:
    items = {"type": "array", "items": json_schema(t.item, bounded)}
    return {**items, "maxItems": MAX_ITEMS} if bounded else items


def _tool_schema(
    name: str, params: tuple[tuple[str, LmType], ...], bounded: bool
) -> dict[str, Any]:
    fields = tuple(FieldSpec(n, t) for n, t in params)
    args = object_schema(fields, bounded, step_outputs=False)
    return {
        "type": "object",
        "properties": {"tool": {"type": "string", "enum": [name]}, "args": args},
        "required": ["tool", "args"],
        "additionalProperties": False,
    }


# Dispatch by the type's kind, as `python_type` and `type_hint` do; `nothing` and `unknown` have
# no entry (any value). `tests/backends` checks that every other kind has one.
_SCHEMAS: dict[type[Any], Callable[[Any, bool], dict[str, Any]]] = {
    Scalar: _scalar_schema,
    ListOf: _list_schema,
    OptionalOf: lambda t, bounded: {"anyOf": [json_schema(t.inner, bounded), {"type": "null"}]},
    OneOf: lambda t, bounded: {"type": "string", "enum": list(t.choices)},
    ToolCall: lambda t, bounded: {
        "anyOf": [_tool_schema(name, params, bounded) for name, params in t.tools]
    },
}


def object_schema(
    fields: tuple[FieldSpec, ...], bounded: bool = False, *, step_outputs: bool = True
) -> dict[str, Any]:
    """A JSON object with every field, in order (a model writes `reasoning` before the answer).
    A step's own `reasoning` output is its chain of thought (`text_bound`); a tool's argument of
    that name is not."""
    properties = {}
    for f in fields:
        schema = json_schema(f.type, bounded)
        if bounded and step_outputs and f.type == STR:
            schema["maxLength"] = text_bound(f)
        if f.desc:
            schema = {**schema, "description": f.desc}
        properties[f.name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields],
        "additionalProperties": False,
    }


@cache
def reply_tokens(fields: tuple[FieldSpec, ...], *, held: bool) -> int:
    """The tokens a reply may take. A held reply gets about what it needs to close its JSON with
    every field at its bound (one token per character, what a model looping on digits writes),
    between the usual `REPLY_TOKENS` and `MOST_REPLY_TOKENS`; the chat backend's field markers
    take about as much as JSON's keys. A free model is not bounded: nothing to count for it."""
    if not held:
        return REPLY_TOKENS
    most = _most_chars(object_schema(fields, bounded=True))
    return max(REPLY_TOKENS, min(most, MOST_REPLY_TOKENS))


def _most_chars(schema: dict[str, Any]) -> int:
    """About the longest JSON text a bounded schema allows: an escape counts one character, as
    `maxLength` counts it, and the whitespace a grammar allows between tokens is not counted."""
    if "enum" in schema:
        return max(len(json.dumps(choice)) for choice in schema["enum"])
    if "anyOf" in schema:
        return max(_most_chars(option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        members = schema["properties"].items()
        return 2 + sum(len(json.dumps(name)) + 4 + _most_chars(s) for name, s in members)
    if kind == "array":
        items: int = schema.get("maxItems", MAX_ITEMS)
        return 2 + items * (2 + _most_chars(schema["items"]))
    if kind == "string":
        length: int = schema.get("maxLength", MAX_TEXT)
        return 2 + length
    return _SCALAR_CHARS.get(str(kind), _SCALAR_CHARS["number"])


class WrittenFloat(float):
    """A reply's JSON number with a fraction or exponent, remembering how it was written: a
    text field that receives it keeps `3.10` (or `1e5`), not Python's `3.1` (or `100000.0`)."""

    text: str

    def __new__(cls, text: str) -> WrittenFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return float(value) if isinstance(value, WrittenFloat) else value


def _as_written(value: Any) -> Any:
    return value.text if isinstance(value, WrittenFloat) else value


def _one_of(choices: tuple[str, ...]) -> Any:
    """A literal that forgives case, spaces, quotes, backticks, markdown bold and a full stop
    around it, but not a different word; and a number written bare (`3` for `literal["1", ...,
    "5"]`), as a model not held to the schema writes a rating."""

    def match(value: Any) -> Any:
        value = _as_written(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            text = value.strip()
            for written in (text, text.strip("\"'`* \t\n").removesuffix(".").strip("\"'`* ")):
                found = next((c for c in choices if c.lower() == written.lower()), None)
                if found is not None:
                    return found
            return text
        return value

    return Annotated[Literal[choices], BeforeValidator(match)]


def python_type(t: LmType) -> Any:
    python = _PYTHON_TYPES.get(type(t))
    return python(t) if python else Any


def _tool_call(t: ToolCall) -> Any:
    """`{"tool": NAME, "args": {...}}` with NAME one of the tools and its arguments typed."""
    tools = dict(t.tools)

    def check(value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("args", {}), dict):
            raise ValueError('expected {"tool": NAME, "args": {...}}')
        name = value.get("tool")
        if name not in tools:
            raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(tools)}")
        fields = tuple(FieldSpec(n, param_type) for n, param_type in tools[name])
        return {"tool": name, "args": validate(fields, value.get("args", {}))}

    return check


def _null_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("null", "none", ""):
        return None
    return value


def _optional(t: OptionalOf) -> Any:
    """The inner type or None; where the inner value is not text, a quoted `"null"`, `"None"`
    or `""` is None too, as the chat backend reads them (it could be nothing else)."""
    if t.inner == STR or isinstance(t.inner, OneOf):
        return Optional[python_type(t.inner)]  # noqa: UP045
    return Annotated[Optional[python_type(t.inner)], BeforeValidator(_null_text)]  # noqa: UP045


_PYTHON_SCALARS: dict[Scalar, Any] = {
    STR: Annotated[str, BeforeValidator(_as_written)],
    INT: Annotated[int, BeforeValidator(_not_bool)],
    FLOAT: Annotated[float, BeforeValidator(_not_bool)],
    BOOL: bool,
}
_PYTHON_TYPES: dict[type[Any], Callable[[Any], Any]] = {
    Scalar: lambda t: _PYTHON_SCALARS[t],
    ListOf: lambda t: list[python_type(t.item)],  # type: ignore[misc]
    OptionalOf: lambda t: _optional(t),
    OneOf: lambda t: _one_of(t.choices),
    ToolCall: lambda t: Annotated[dict[str, Any], BeforeValidator(_tool_call(t))],
}


@cache
def outputs_model(fields: tuple[FieldSpec, ...]) -> type[BaseModel]:
    """A pydantic model that checks (and, where lax, converts) one step's output values."""
    definitions: dict[str, Any] = {f.name: (python_type(f.type), ...) for f in fields}
    return create_model(
        "Outputs",
        __config__=ConfigDict(
            extra="ignore", strict=False, coerce_numbers_to_str=True, allow_inf_nan=False
        ),
        **definitions,
    )


class InvalidValues(ValueError):
    """Values that do not fit their fields' types; the message says which field and why."""


def validate(fields: tuple[FieldSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    """The values, typed; `InvalidValues` says which field is wrong and why."""
    try:
        model = outputs_model(fields).model_validate(values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "reply"
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        raise InvalidValues("; ".join(problems)) from None
    return {f.name: getattr(model, f.name) for f in fields}


def render_value(value: Any) -> str:
    """A value as prompt text: strings as they are, lists one item per line, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        if all(isinstance(item, str) for item in value):
            return "\n".join(f"[{i}] {item}" for i, item in enumerate(value, 1)) or "[]"
        return json.dumps(list(value), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def type_hint(t: LmType) -> str:
    """How a field's expected format is said to the model."""
    hint = _HINTS.get(type(t))
    return hint(t) if hint else f"a JSON value of type {t}"


def _optional_hint(t: OptionalOf) -> str:
    inner = type_hint(t.inner)
    return f"{inner + ', or ' if inner else ''}null if unknown"


def _tool_hint(t: ToolCall) -> str:
    return 'a JSON object {"tool": NAME, "args": {...}} calling one of: ' + "; ".join(
        f"{name}({', '.join(f'{n}: {param}' for n, param in params)})" for name, params in t.tools
    )


_SCALAR_HINTS: dict[Scalar, str] = {
    STR: "",
    INT: "a whole number",
    FLOAT: "a number",
    BOOL: "true or false",
}
_LIST_EXAMPLES: dict[LmType, str] = {
    STR: '["a", "b"]',
    INT: "[1, 2]",
    FLOAT: "[0.5, 2.0]",
    BOOL: "[true, false]",
}
_HINTS: dict[type[Any], Callable[[Any], str]] = {
    Scalar: lambda t: _SCALAR_HINTS[t],
    ListOf: lambda t: f"a JSON list of {t.item}, e.g. {_LIST_EXAMPLES.get(t.item, '[...]')}",
    OptionalOf: _optional_hint,
    OneOf: lambda t: "must be exactly one of: " + "; ".join(t.choices),
    ToolCall: _tool_hint,
}


def field_line(f: FieldSpec, bullet: str, *, output: bool) -> str:
    """`- `name` (type): description (format)`; inputs need no format hint."""
    hint = type_hint(f.type) if output else ""
    notes = " ".join(n for n in (f.desc, f"({hint})" if hint and f.desc else hint) if n)
    return f"{bullet} `{f.name}` ({f.type})" + (f": {notes}" if notes else "")


NOT_SUPPLIED = "Not supplied for this example."


def demo_values(
    demo_fields: tuple[tuple[str, Any], ...],
    inputs: tuple[FieldSpec, ...],
    outputs: tuple[FieldSpec, ...],
) -> dict[str, Any] | None:
    """A demo's values, or None if it lacks an input or output; a missing `reasoning` (a
    labelled example for a chain-of-thought step) is shown as not supplied."""
    values = dict(demo_fields)
    for f in outputs:
        if f.name not in values and f.name == REASONING:
            values[f.name] = NOT_SUPPLIED
    if all(f.name in values for f in (*inputs, *outputs)):
        return values
    return None
