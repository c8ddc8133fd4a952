"""The `json` backend: the reply is one JSON object of the output fields.

The prompt puts everything that does not change between calls first (instruction, field
descriptions, the reply's shape, demos) so a server's prefix cache is reused; the call's inputs come
last. The reply is asked for with the outputs' JSON Schema; on a model that enforces it while
decoding, its strings and lists are bounded.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, ClassVar

from lmc.backends.base import Backend, LMClient, LMRequest, Message, ReplyError, StepView
from lmc.backends.schema import (
    InvalidValues,
    demo_values,
    field_line,
    object_schema,
    render_value,
    reply_tokens,
    validate,
)
from lmc.signatures import FieldSpec


def _field_lines(fields: tuple[FieldSpec, ...], *, output: bool) -> list[str]:
    return [field_line(f, "-", output=output) for f in fields]


def render_inputs(step: StepView, values: dict[str, Any]) -> str:
    return "\n\n".join(f"{f.name}:\n{render_value(values[f.name])}" for f in step.inputs)


def _closing(step: StepView) -> str:
    return "Reply with the JSON object: " + ", ".join(f'"{f.name}"' for f in step.outputs) + "."


class JsonBackend(Backend):
    name: ClassVar[str] = "json"

    def system_prompt(self, step: StepView) -> str:
        keys = ", ".join(f'"{f.name}"' for f in step.outputs)
        return "\n".join(
            [
                step.instruction,
                "",
                "Inputs:",
                *_field_lines(step.inputs, output=False),
                "",
                "Reply with one JSON object and nothing else. Its keys, in this order, are "
                f"{keys}:",
                *_field_lines(step.outputs, output=True),
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
                reply = {f.name: values[f.name] for f in step.outputs}
                messages.append(Message("assistant", json.dumps(reply, ensure_ascii=False)))
        return tuple(messages), closing

    def schema_text(self, step: StepView, lm: LMClient) -> str:
        bounded = lm.enforces_schema
        return self.static_parts.get(
            ("schema", step.signature, step.module, bounded),
            lambda: json.dumps(object_schema(step.outputs, bounded=bounded)),
        )

    def lower(self, step: StepView, inputs: dict[str, Any], lm: LMClient) -> LMRequest:
        return LMRequest(
            messages=tuple(self.messages(step, inputs)),
            json_schema=self.schema_text(step, lm),
            max_tokens=reply_tokens(step.outputs, held=lm.enforces_schema),
        )

    def parse(self, step: StepView, reply: str) -> dict[str, Any]:
        data = _first_json_object(reply)
        if data is None:
            raise ReplyError("the reply is not a JSON object", reply)
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
        return replace(request, messages=(*request.messages, *follow_up))


# Raw line breaks and tabs inside strings are not JSON, but their meaning is plain; servers whose
# schema grammar lets them through (llama-cpp-python's) would otherwise cost a repair call.
_LENIENT = json.JSONDecoder(strict=False)


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a reply, tolerating text or a code fence around it."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _LENIENT.raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        except (ValueError, RecursionError):  # a number too long to read, or nesting too deep
            return None
        return value if isinstance(value, dict) else None
    return None
