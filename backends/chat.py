"""The `chat` backend: fields marked `[[ ## name ## ]]`, in the spirit of DSPy's ChatAdapter.

Text fields are written as they are; other values as JSON. On a model that constrains decoding,
a grammar holds the reply to the markers and each field's type, so even a small model cannot
break the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from lmc.backends.base import Backend, LMClient, LMRequest, Message, ReplyError, StepView
from lmc.backends.schema import (
    MAX_ITEMS,
    MAX_TEXT,
    MOST_REPLY_TOKENS,
    InvalidValues,
    demo_values,
    field_line,
    render_value,
    reply_tokens,
    text_bound,
    validate,
)
from lmc.files import json_value
from lmc.signatures import REASONING, FieldSpec
from lmc.types import BOOL, FLOAT, INT, STR, ListOf, LmType, OneOf, OptionalOf, Scalar, ToolCall

_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
# A value a model put in a code fence (```json ... ```), as it often does with JSON.
_FENCED = re.compile(r"```[\w+-]*[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
COMPLETED = "[[ ## completed ## ]]"


def marker(name: str) -> str:
    return f"[[ ## {name} ## ]]"


def _describe(fields: tuple[FieldSpec, ...], *, output: bool) -> list[str]:
    return [field_line(f, f"{i}.", output=output) for i, f in enumerate(fields, 1)]


def render_fields(fields: tuple[FieldSpec, ...], values: dict[str, Any], *, output: bool) -> str:
    return "\n\n".join(
        f"{marker(f.name)}\n{_field_text(f, values[f.name], output)}" for f in fields
    )


def _field_text(f: FieldSpec, value: Any, output: bool) -> str:
    """Inputs as readable text; outputs exactly as the model is asked to write them."""
    if isinstance(value, str) and _is_text(f.type):
        return value
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False) if output else render_value(value)


class ChatBackend(Backend):
    name: ClassVar[str] = "chat"

    def system_prompt(self, step: StepView) -> str:
        skeleton = "\n\n".join(
            f"{marker(f.name)}\n{{{f.name}}}" for f in (*step.inputs, *step.outputs)
        )
        return "\n".join(
            [
                "Your input fields are:",
                *_describe(step.inputs, output=False),
                "Your output fields are:",
                *_describe(step.outputs, output=True),
                "All interactions are structured like this, with the values filled in:",
                "",
                skeleton,
                "",
                COMPLETED,
                "",
                "Your objective: " + step.instruction,
            ]
        )

    def _reply_request(self, step: StepView) -> str:
        order = ", then ".join(f"`{marker(f.name)}`" for f in step.outputs)
        return f"Respond with the output fields {order}, ending with `{COMPLETED}`."

    def messages(self, step: StepView, inputs: dict[str, Any]) -> list[Message]:
        prefix, request = self.static_parts.get(
            ("messages", step.signature, step.module, step.params), lambda: self._prefix(step)
        )
        user = render_fields(step.inputs, inputs, output=False) + "\n\n" + request
        return [*prefix, Message("user", user)]

    def _prefix(self, step: StepView) -> tuple[tuple[Message, ...], str]:
        """The messages before a call's inputs (system prompt, demos), and the request for the
        reply after them: the same on every call of the step."""
        messages = [Message("system", self.system_prompt(step))]
        for demo in step.params.demos:
            values = demo_values(demo.fields, step.inputs, step.outputs)
            if values is not None:
                messages.append(Message("user", render_fields(step.inputs, values, output=False)))
                reply = render_fields(step.outputs, values, output=True) + f"\n\n{COMPLETED}"
                messages.append(Message("assistant", reply))
        return tuple(messages), self._reply_request(step)

    def lower(self, step: StepView, inputs: dict[str, Any], lm: LMClient) -> LMRequest:
        grammar = None
        if lm.constrains:
            grammar = self.static_parts.get(
                ("grammar", step.signature, step.module), lambda: marker_grammar(step.outputs)
            )
        tokens = reply_tokens(step.outputs, held=lm.constrains)
        if not lm.constrains and step.outputs and step.outputs[0].name == REASONING:
            # A free chain of thought is not bounded: cut short, it never reaches its answer's
            # marker. It gets the room the json backend gives one.
            tokens = MOST_REPLY_TOKENS
        return LMRequest(
            messages=tuple(self.messages(step, inputs)), grammar=grammar, max_tokens=tokens
        )

    def parse(self, step: StepView, reply: str) -> dict[str, Any]:
        sections = _sections(reply)
        raw: dict[str, Any] = {}
        for f in step.outputs:
            if f.name not in sections:
                raise ReplyError(f"the reply has no {marker(f.name)} section", reply)
            text = sections[f.name].strip()
            if isinstance(f.type, OptionalOf) and text.lower() in ("null", "none", ""):
                raw[f.name] = None
            else:
                raw[f.name] = text if _is_text(f.type) else _loads(_unfenced(text))
        try:
            return validate(step.outputs, raw)
        except InvalidValues as error:
            raise ReplyError(str(error), reply) from None

    def repair(
        self, step: StepView, request: LMRequest, reply: str, error: ReplyError, lm: LMClient
    ) -> LMRequest:
        note = f"That reply could not be used: {error.message}. {self._reply_request(step)}"
        follow_up = (Message("assistant", reply), Message("user", note))
        return replace(request, messages=(*request.messages, *follow_up))


def _sections(reply: str) -> dict[str, str]:
    """Each marked section's text; where a marker repeats, the first one counts."""
    found: dict[str, str] = {}
    matches = list(_MARKER.finditer(reply))
    for i, here in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reply)
        found.setdefault(here.group(1), reply[here.end() : end])
    return found


def _is_text(t: LmType) -> bool:
    return t == STR or isinstance(t, OneOf) or (isinstance(t, OptionalOf) and _is_text(t.inner))


def _unfenced(text: str) -> str:
    """A JSON value without the code fence or backticks a model wrote around it (a JSON value
    never begins or ends with a backtick)."""
    fenced = _FENCED.fullmatch(text)
    return (fenced.group(1) if fenced else text).strip("`").strip()


def _loads(text: str) -> Any:
    try:
        return json_value(text)
    except ValueError:  # not JSON, or JSON beyond lmc's limits: the text as written
        lowered = text.lower()
        return {"true": True, "false": False, "none": None, "null": None}.get(lowered, text)


# Grammar -----------------------------------------------------------------------------------------


def marker_grammar(fields: tuple[FieldSpec, ...]) -> str:
    """GBNF for `[[ ## f ## ]]\\nVALUE\\n\\n...[[ ## completed ## ]]` with each value typed."""
    rules: dict[str, str] = {}
    parts = []
    for i, f in enumerate(fields):
        rule = f"field{i}"
        bound = text_bound(f)
        rules[rule] = _text_rule(bound, rules) if f.type == STR else _value_rule(f.type, rules)
        parts.append(f"{_literal(marker(f.name) + chr(10))} {rule} {_literal(chr(10) * 2)}")
    rules["root"] = " ".join([*parts, _literal(COMPLETED)])
    return "\n".join(f"{name} ::= {body}" for name, body in sorted(rules.items()))


def _text_rule(bound: int, rules: dict[str, str]) -> str:
    """One paragraph of bounded length: a small model cannot run on forever."""
    name = "text" if bound == MAX_TEXT else f"text{bound}"
    rules[name] = f"[^\\[\\n]{{1,{bound}}}"
    return name


def _value_rule(t: LmType, rules: dict[str, str]) -> str:
    if t == STR:
        return _text_rule(MAX_TEXT, rules)
    if isinstance(t, OneOf):
        return "(" + " | ".join(_literal(c) for c in t.choices) + ")"
    if isinstance(t, OptionalOf):
        return f'({_value_rule(t.inner, rules)} | "null")'
    return _json_rule(t, rules)


def _json_rule(t: LmType, rules: dict[str, str]) -> str:
    rule = _JSON_RULES.get(type(t))
    if rule is None:
        raise ValueError(f"no grammar for {t}")
    return rule(t, rules)


# The named rule each scalar's JSON value is written by; true and false are written in place.
# A string takes no raw control character: JSON does not, and the reply's value is read as JSON
# (a raw tab in a list's string made a reply the grammar allowed and the parser refused). A tab
# or a new line is written escaped. The class is the one `gbnf` holds a JSON Schema's strings to.
_SCALAR_RULES: dict[Scalar, tuple[str, str]] = {
    INT: ("int", '"-"? [0-9]{1,15}'),
    FLOAT: ("number", '"-"? [0-9]{1,15} ("." [0-9]{1,15})?'),
    STR: ("string", rf'"\"" ([^"\\\x7F\x00-\x1F] | "\\" ["\\nt]){{0,{MAX_TEXT}}} "\""'),
}


def _scalar_rule(t: Scalar, rules: dict[str, str]) -> str:
    if t == BOOL:
        return '("true" | "false")'
    name, body = _SCALAR_RULES[t]
    rules[name] = body
    return name


def _list_rule(t: ListOf, rules: dict[str, str]) -> str:
    item = _json_rule(t.item, rules)
    return f'("[" ({item} (", " {item}){{0,{MAX_ITEMS - 1}}})? "]")'


def _tool_rule(name: str, params: tuple[tuple[str, LmType], ...], rules: dict[str, str]) -> str:
    """`{"tool": "NAME", "args": {"a": VALUE, ...}}`, keys in declared order."""
    parts = [_literal('{"tool": ' + json.dumps(name) + ', "args": {')]
    for i, (param, param_type) in enumerate(params):
        key = (", " if i else "") + json.dumps(param) + ": "
        parts += [_literal(key), _json_rule(param_type, rules)]
    return " ".join([*parts, _literal("}}")])


# Dispatch by the type's kind; `nothing` and `unknown` have no grammar. `tests/backends` checks
# that every other kind has an entry.
_JSON_RULES: dict[type[Any], Callable[[Any, dict[str, str]], str]] = {
    Scalar: _scalar_rule,
    ListOf: _list_rule,
    OptionalOf: lambda t, rules: f'({_json_rule(t.inner, rules)} | "null")',
    OneOf: lambda t, rules: "(" + " | ".join(_literal(json.dumps(c)) for c in t.choices) + ")",
    ToolCall: lambda t, rules: (
        "(" + " | ".join(_tool_rule(name, params, rules) for name, params in t.tools) + ")"
    ),
}


def _literal(text: str) -> str:
    """A GBNF literal: JSON's escapes, and every other character as it is (a `\\uXXXX` pair
    for an emoji would be two surrogates, which no token matches)."""
    return json.dumps(text, ensure_ascii=False)
