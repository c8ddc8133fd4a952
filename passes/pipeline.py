"""Pipelines written as `bootstrap-demos{max_demos=4},fuse-steps`, of passes named in
`lmc.plugins.PASSES`. A pipeline is parsed and checked (names, options, their types) before any LM
call."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, get_type_hints

from lmc.errors import InputError
from lmc.plugins import PASSES, UnknownName

if TYPE_CHECKING:
    # Only a type here: the pipeline module stays light, so `lmc compile --help` can show the
    # default without importing the passes.
    from lmc.passes.base import Pass

# The default pipeline, from its most thorough form to its leanest: a compile that names no
# pipeline runs the first that fits its budget (`passes/budget.py`). Fixed demos first, then each
# input's nearest train examples beside them (kept only when that holds on dev: it is what lifts
# many-label classification on small models), then the fixed demos that no longer pay are pruned.
DEFAULT_PLANS = tuple(
    f"dead-steps,dedupe-steps,{plan}"
    for plan in (
        "bootstrap-demos{candidates=4,max_train=16},dynamic-demos,prune-demos",
        "bootstrap-demos{candidates=4,max_train=16},dynamic-demos",
        "bootstrap-demos{candidates=3,max_train=12},dynamic-demos",
        "bootstrap-demos{candidates=2,max_train=8},dynamic-demos",
        "bootstrap-demos{candidates=2,max_train=8}",
        "bootstrap-demos{candidates=2,max_train=4}",
        "bootstrap-demos{candidates=1,max_train=4}",
    )
)
DEFAULT_PIPELINE = DEFAULT_PLANS[0]


class PipelineError(InputError):
    """A pipeline spec that names an unknown pass or option, or a badly typed value."""


def pass_class(name: str) -> type[Any]:
    try:
        return PASSES.load(name)
    except UnknownName as error:
        raise PipelineError(str(error)) from None


_ITEM = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^{}]*)\})?\s*")


def parse_pipeline(spec: str) -> list[Pass]:
    """`a{x=1,y=2},b` -> [A(x=1, y=2), B()]; every problem is reported before anything runs."""
    passes: list[Pass] = []
    position = 0
    spec = spec.strip()
    while position < len(spec):
        match = _ITEM.match(spec, position)
        if match is None or match.end() == position:
            raise PipelineError(
                f"cannot read the pipeline at column {position + 1}: '{spec[position:]}'; "
                "expected NAME or NAME{option=value,...}, separated by commas"
            )
        passes.append(_make(match.group(1), match.group(2) or ""))
        position = match.end()
        if position < len(spec):
            if spec[position] == "{":
                raise PipelineError(
                    f"the options of {match.group(1)} opened at column {position + 1} are not "
                    "closed: expected NAME{option=value,...}"
                )
            if spec[position] != ",":
                raise PipelineError(
                    f"cannot read the pipeline at column {position + 1}: '{spec[position:]}'; "
                    "expected ',' between passes"
                )
            position += 1
    if not passes:
        raise PipelineError(
            "the pipeline is empty; expected passes by name, separated by commas, such as "
            "dead-steps,bootstrap-demos{max_demos=4} (leave -p out for the default)"
        )
    return passes


def _make(name: str, options_text: str) -> Pass:

    cls = pass_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in options_text.split(","))):
        key, equals, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if key in fields and not equals:
            raise PipelineError(f"{name}: option {key} needs a value: {key}=...")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise PipelineError(f"{name}: unknown option '{key}'; its options are {known}")
        options[key] = _convert(name, key, raw.strip(), hints[key])
    instance: Pass = cls(**options)
    return instance


def _convert(name: str, key: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if kind in (int, float):
            number = kind(raw)
            if number < 0:
                raise ValueError(raw)
            return number
        return raw
    except ValueError:
        raise PipelineError(
            f"{name}: option {key} expects "
            f"{'a number ≥ 0 (' + kind.__name__ + ')' if kind in (int, float) else kind.__name__}; "
            f"found '{raw}'"
        ) from None
