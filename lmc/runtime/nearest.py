"""A step's nearest demos: which of its pool a call is shown, chosen by the call's inputs.

A step whose parameters have a nearest pool (`nearest 3 by bm25 { demo ... }`) is shown, on each
call, its fixed demos and then the `k` pool demos whose input fields are nearest the call's input
values, the nearest last (right before the inputs). Inputs and demos are compared as text: each
input field's value in signature order, a list an item a line, anything not text as JSON. The
choice depends on nothing but the inputs and the pool, so the prompt, and the LM cache's key,
are the same on every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lmc.errors import RunError
from lmc.files import DataError
from lmc.ir.graph import StepParams
from lmc.retrieval.nearest import nearest
from lmc.signatures import SignatureSpec


class NearestUnavailable(RunError):
    """A pool that cannot be ranked here: the `embeddings` kind without its optional extra."""


def shown_params(
    params: StepParams, signature: SignatureSpec, values: Mapping[str, Any]
) -> StepParams:
    """The parameters one call of a step is shown: `params` itself when it has no nearest pool,
    else its instruction, its fixed demos and the pool's `k` demos nearest `values`."""
    pool = params.nearest
    if pool is None:
        return params
    names = [f.name for f in signature.inputs]
    texts = [input_text(dict(demo.fields), names) for demo in pool.pool]
    try:
        chosen = nearest(pool.kind, texts, input_text(values, names), pool.k)
    except DataError as error:
        raise NearestUnavailable(f"nearest demos by {pool.kind}: {error}") from None
    picked = tuple(pool.pool[i] for i in reversed(chosen))
    return StepParams(params.instruction, params.demos + picked)


def input_text(values: Mapping[str, Any], names: Sequence[str]) -> str:
    """The text a call's (or a demo's) input values are compared by: each field's value that is
    given, in `names` order."""
    return "\n".join(_text(values[name]) for name in names if name in values)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "\n".join(_text(item) for item in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
