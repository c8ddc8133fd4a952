"""The `json` backend: the reply is one JSON object of the output fields.

The prompt puts everything that does not change between calls first (instruction, field
descriptions, the reply's shape, demos) so a server's prefix cache is reused; the call's inputs come
last. The reply is asked for with the outputs' JSON Schema; on a model that enforces it while
decoding, its strings and lists are bounded.

A step that reasons first (a chain of thought: its first output is `reasoning`) writes that
reasoning as plain text and then the object of its other outputs. Inside a JSON string a small
model writes a plan and jumps to the answer; as plain text it works the problem through.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, ClassVar

from lmc.backends.base import Backend, LMClient, LMRequest, Message, ReplyError, StepView
from lmc.backends.schema import (
    MAX_PLAIN_REASONING,
    MOST_REPLY_TOKENS,
    InvalidValues,
    WrittenFloat,
    demo_values,
    field_line,
    object_schema,
    render_value,
    reply_tokens,
    validate,
)
from lmc.signatures import REASONING, FieldSpec
from lmc.types import STR


def _field_lines(fields: tuple[FieldSpec, ...], *, output: bool) -> list[str]:
    return [field_line(f, "-", output=output) for f in fields]


def render_inputs(step: StepView, values: dict[str, Any]) -> str:
    return "\n\n".join(f"{f.name}:\n{render_value(values[f.name])}" for f in step.inputs)


def reasons_first(step: StepView) -> bool:
    """Whether the step's reply opens with its plain-text `reasoning`, before the object of
    its other outputs."""
    if len(step.outputs) < 2:
        return False  # nothing to follow it: the reasoning is the object's one field
    first = step.outputs[0]
    return first.name == REASONING and first.type == STR


def object_fields(step: StepView) -> tuple[FieldSpec, ...]:
    """The outputs the reply's JSON object holds: all of them, or all but a reasoning first."""
    return step.outputs[1:] if reasons_first(step) else step.outputs


def _closing(step: StepView) -> str:
    keys = ", ".join(f'"{f.name}"' for f in object_fields(step))
    if reasons_first(step):
        return f"Reason step by step in plain text, then reply with the JSON object: {keys}."
    return f"Reply with the JSON object: {keys}."


class JsonBackend(Backend):
    name: ClassVar[str] = "json"

    def system_prompt(self, step: StepView) -> str:
        fields = object_fields(step)
        keys = ", ".join(f'"{f.name}"' for f in fields)
        if reasons_first(step):
            how = step.outputs[0].desc or "think it through."
            reply = [
                f"First write your reasoning as plain text: {how}",
                "Then end your reply with one JSON object, on a line of its own. Its keys, in "
                f"this order, are {keys}:",
            ]
        else:
            reply = [
                f"Reply with one JSON object and nothing else. Its keys, in this order, are {keys}:"
            ]
        return "\n".join(
            [
                step.instruction,
                "",
                "Inputs:",
                *_field_lines(step.inputs, output=False),
                "",
                *reply,
                *_field_lines(fields, output=True),
            ]
        )

    def messages(self, step: StepView, inputs: dict[str, Any]) -> list[Message]:
        prefix, closing = self.static_parts.get(
            ("messages", step.signature, step.module, step.params), lambda: self._prefix(step)
        )
        return [*prefix, Message("user", render_inputs(step, inputs) + "\n\n" + closing)]

    def _prefix(self, step: StepView) -> tuple[tuple[Message, ...], str]:
        """The messages before a call's inputs (system prompt, demos), and the closing line
        after them: the same on every call of the step."""
        closing = _closing(step)
        messages = [Message("system", self.system_prompt(step))]
        for demo in step.params.demos:
            values = demo_values(demo.fields, step.inputs, step.outputs)
            if values is not None:
                user = render_inputs(step, values) + "\n\n" + closing
                messages.append(Message("user", user))
                messages.append(Message("assistant", _reply_text(step, values)))
        return tuple(messages), closing

    def schema_text(self, step: StepView, lm: LMClient) -> str:
        bounded = lm.enforces_schema
        return self.static_parts.get(
            ("schema", step.signature, step.module, bounded),
            lambda: json.dumps(object_schema(object_fields(step), bounded=bounded)),
        )

    def lower(self, step: StepView, inputs: dict[str, Any], lm: LMClient) -> LMRequest:
        messages = tuple(self.messages(step, inputs))
        schema = self.schema_text(step, lm)
        if reasons_first(step):
            return LMRequest(
                messages=messages,
                json_schema=schema,
                reasoning_first=MAX_PLAIN_REASONING,
                # Held or free, the most any reply gets: its lines may take more than a held
                # field's bound, and cut short the reasoning would never reach its object.
                max_tokens=MOST_REPLY_TOKENS,
            )
        return LMRequest(
            messages=messages,
            json_schema=schema,
            max_tokens=reply_tokens(step.outputs, held=lm.enforces_schema),
        )

    def parse(self, step: StepView, reply: str) -> dict[str, Any]:
        found = _reply_object(reply)
        if found is None:
            raise ReplyError("the reply is not a JSON object", reply)
        start, data = found
        if reasons_first(step) and REASONING not in data:
            data = {REASONING: _reasoning_text(reply[:start]), **data}
        missing = [f.name for f in step.outputs if f.name not in data]
        if missing:
            raise ReplyError(f"the reply has no {', '.join(repr(m) for m in missing)}", reply)
        try:
            return validate(step.outputs, data)
        except InvalidValues as error:
            raise ReplyError(str(error), reply) from None

    def repair(
        self, step: StepView, request: LMRequest, reply: str, error: ReplyError, lm: LMClient
    ) -> LMRequest:
        note = (
            f"That reply could not be used: {error.message}. Reply again with only the JSON "
            "object, with every key."
        )
        follow_up = (Message("assistant", reply), Message("user", note))
        messages = (*request.messages, *follow_up)
        if not reasons_first(step):
            return replace(request, messages=messages)
        # The reasoning is written: the follow-up asks for the object alone, held to its schema,
        # and `parse_repaired` keeps the first reply's reasoning with it.
        tokens = reply_tokens(object_fields(step), held=lm.enforces_schema)
        return replace(request, messages=messages, reasoning_first=0, max_tokens=tokens)

    def parse_repaired(self, step: StepView, reply: str, first_reply: str) -> dict[str, Any]:
        parsed = self.parse(step, reply)
        if reasons_first(step) and not parsed[REASONING].strip():
            found = _reply_object(first_reply)
            written = first_reply[: found[0]] if found is not None else first_reply
            parsed[REASONING] = _reasoning_text(written)
        return parsed


def _reply_text(step: StepView, values: dict[str, Any]) -> str:
    """A demo's reply, as the step asks for one: its reasoning first where it reasons first."""
    data = {f.name: values[f.name] for f in object_fields(step)}
    text = json.dumps(data, ensure_ascii=False)
    return f"{values[REASONING]}\n\n{text}" if reasons_first(step) else text


def _reasoning_text(text: str) -> str:
    """The plain-text reasoning before a reply's object, without a code fence opened for it."""
    text = text.rstrip()
    fence = text.rfind("```")
    if fence != -1 and text[fence + 3 :].strip().lower() in ("", "json"):
        text = text[:fence]
    return text.strip()


# Raw line breaks and tabs inside strings are not JSON, but their meaning is plain; servers whose
# schema grammar lets them through (llama-cpp-python's) would otherwise cost a repair call.
_LENIENT = json.JSONDecoder(strict=False, parse_float=WrittenFloat)


def _reply_object(text: str) -> tuple[int, dict[str, Any]] | None:
    """The JSON object a reply ends with and where it starts, tolerating a code fence around
    it; else the first object in it. Reasoning before it may hold braces (`\\frac{1}{2}`) or
    even an object of its own."""
    first: tuple[int, dict[str, Any]] | None = None
    start = text.find("{")
    while start != -1:
        try:
            value, end = _LENIENT.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        except (ValueError, RecursionError):  # a number too long to read, or nesting too deep
            return first
        if isinstance(value, dict):
            if not text[end:].strip().strip("`").strip():
                return start, value
            first = first or (start, value)
        start = text.find("{", start + 1)
    return first
