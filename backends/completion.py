"""The `completion` backend: one raw prompt, rendered through the model's own chat template.

For models served as plain completion endpoints, and to see exactly the text a model reads. The
messages are the `json` backend's; the model's template (jinja2, from the GGUF metadata) turns them
into the prompt, and the reply is parsed as JSON.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from functools import cache
from typing import Any, ClassVar

from jinja2 import Template
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lmc.backends.base import (
    LMClient,
    LMRequest,
    Message,
    ReplyError,
    StepView,
    system_in_first_turn,
)
from lmc.backends.json_object import JsonBackend
from lmc.errors import InputError, RunError


class TemplateMissing(InputError):
    """The model has no chat template to render a raw prompt with (a served or hosted model
    never gives one): the backend and the model the user named do not go together, and naming
    another backend is the fix, so it is bad input, exit 2."""


class TemplateFailed(RunError):
    """The model's chat template fails on the backend's messages (a syntax error, or its own
    `raise_exception`): the model file's template cannot be used, as a local model's that
    refuses the json backend's messages fails its call; exit 1."""


@cache
def _compile(source: str) -> Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source)


def render_prompt(template: str, messages: tuple[Message, ...]) -> str:
    """The prompt a chat model reads for these messages, ending where its reply begins."""
    return _compile(template).render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        bos_token="",
        eos_token="",
    )


class CompletionBackend(JsonBackend):
    name: ClassVar[str] = "completion"

    def _prompt(self, lm: LMClient, messages: tuple[Message, ...]) -> str:
        template = lm.chat_template()
        if template is None:
            raise TemplateMissing(
                f"the completion backend renders the model's chat template, and {lm.identity} "
                "has none; use --backend json or chat"
            )
        try:
            return render_prompt(template, messages)
        except TemplateError as error:  # a syntax error, or the template's own raise_exception
            moved = system_in_first_turn(messages)
            if moved is not None:  # a template that refuses a system message
                with contextlib.suppress(TemplateError):
                    return render_prompt(template, moved)
            raise TemplateFailed(
                f"the completion backend renders the model's chat template, and that of "
                f"{lm.identity} fails: {error.message or type(error).__name__}; use --backend "
                "json or chat"
            ) from None

    def lower(self, step: StepView, inputs: dict[str, Any], lm: LMClient) -> LMRequest:
        request = super().lower(step, inputs, lm)
        return replace(request, prompt=self._prompt(lm, request.messages))

    def repair(
        self, step: StepView, request: LMRequest, reply: str, error: ReplyError, lm: LMClient
    ) -> LMRequest:
        follow_up = super().repair(step, request, reply, error, lm)
        return replace(follow_up, prompt=self._prompt(lm, follow_up.messages))
