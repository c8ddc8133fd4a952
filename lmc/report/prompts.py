"""What each step of a program shows the model: its instruction, its demos, and one prompt
rendered by the backend's own lowering, without calling the model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lmc.backends.base import Backend, StepView
from lmc.backends.clients.unreachable import Unreachable
from lmc.backends.completion import TemplateMissing
from lmc.ir.graph import ProgramGraph, StepNode, StepParams
from lmc.plugins import BACKENDS
from lmc.signatures import ModuleKind

DEFAULT_BACKEND = "json"


@dataclass(frozen=True)
class StepCard:
    """One step (or steps that share parameters) as the report shows it."""

    key: str
    steps: list[str]  # the ids of the steps reading these parameters
    signature: str
    module: str
    instruction: str
    instruction_source: str  # "learned", "its signature's" or "lmc's default"
    demos: list[dict[str, Any]]
    pool: str | None  # "3 nearest of 40 pool demos by bm25", for a step with a nearest pool
    prompt: list[tuple[str, str]]  # (role, text) of each message, or ("prompt", text)
    prompt_inputs: str  # where the rendered prompt's inputs came from
    prompt_note: str | None  # what the rendering could not show


def _never_called() -> BaseException:
    return AssertionError("a report never calls a model")


# The LM a report lowers prompts for: it answers nothing, so no call can happen.
_NO_MODEL = Unreachable("report", _never_called)


def step_cards(graph: ProgramGraph, backend_name: str | None) -> list[StepCard]:
    """A card per parameter key, in the program's order, rendered with `backend_name` (the
    one the program was compiled for; json when it names none)."""
    backend: Backend = BACKENDS.load(backend_name or DEFAULT_BACKEND)()
    cards: list[StepCard] = []
    for step in graph.steps():
        if any(card.key == step.param_key for card in cards):
            continue
        sharing = [s.id for s in graph.steps() if s.param_key == step.param_key]
        cards.append(_card(step, graph.params[step.param_key], sharing, backend))
    return cards


def _card(step: StepNode, params: StepParams, sharing: list[str], backend: Backend) -> StepCard:
    view = _VIEWS[step.module](step, params)
    demo = next((dict(d.fields) for d in params.demos if _has_inputs(d.fields, view)), None)
    if demo is not None:
        inputs = {f.name: demo[f.name] for f in view.inputs}
        source = "its first demo's inputs (a real input from the compile's data)"
    else:
        inputs = {f.name: f"{{{f.name}}}" for f in view.inputs}
        source = "placeholders {name} for its inputs (it has no demo to take real ones from)"
    prompt, note = _rendered(backend, view, inputs)
    pool = params.nearest
    return StepCard(
        key=step.param_key,
        steps=sharing,
        signature=step.signature.display_name,
        module=step.module,
        instruction=view.instruction if step.module != "react" else _own(step, params),
        instruction_source=_instruction_source(step, params),
        demos=[dict(d.fields) for d in params.demos],
        pool=(
            f"each call is also shown the {pool.k} nearest of {len(pool.pool)} pool demos "
            f"(by {pool.kind}), after these"
            if pool is not None
            else None
        ),
        prompt=prompt,
        prompt_inputs=source,
        prompt_note=note,
    )


def _rendered(
    backend: Backend, view: StepView, inputs: dict[str, Any]
) -> tuple[list[tuple[str, str]], str | None]:
    """The request's text, message by message, and a note on what it leaves out."""
    note = None
    try:
        request = backend.lower(view, inputs, _NO_MODEL)
    except TemplateMissing:
        # The completion backend's messages are the json backend's, put through the model's
        # chat template, which only the model file has.
        request = BACKENDS.load(DEFAULT_BACKEND)().lower(view, inputs, _NO_MODEL)
        note = f"the {backend.name} backend sends these messages through the model's chat template"
    shown: list[tuple[str, str]] = [(m.role, m.content) for m in request.messages]
    if request.prompt is not None and not shown:
        shown = [("prompt", request.prompt)]
    if request.json_schema is not None:
        schema = json.dumps(json.loads(request.json_schema), indent=2, ensure_ascii=False)
        label = (
            "reply schema, after plain-text reasoning"
            if request.reasoning_first
            else "reply schema"
        )
        shown.append((label, schema))
    return shown, note


def _has_inputs(fields: tuple[tuple[str, Any], ...], view: StepView) -> bool:
    names = {name for name, _ in fields}
    return all(f.name in names for f in view.inputs)


def _instruction_source(step: StepNode, params: StepParams) -> str:
    if params.instruction is not None:
        return "learned"
    if step.signature.instruction is not None:
        return "its signature's"
    return "lmc's default: the signature has none"


def _own(step: StepNode, params: StepParams) -> str:
    """An agent's instruction: the learned one, else its signature's."""
    return params.instruction or step.signature.instruction or "(its signature names none)"


def _agent_view(step: StepNode, params: StepParams) -> StepView:
    # The agent's last call, which writes the declared outputs from the trajectory.
    from lmc.runtime.agent import extract_view

    return extract_view(step, replace(params, nearest=None))


# How each module kind is lowered: the view the runtime builds for its (last) call.
_VIEWS: dict[ModuleKind, Callable[[StepNode, StepParams], StepView]] = {
    "predict": lambda step, params: StepView(step.signature, step.module, params),
    "chain_of_thought": lambda step, params: StepView(step.signature, step.module, params),
    "react": _agent_view,
}
