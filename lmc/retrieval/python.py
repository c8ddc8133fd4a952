"""Retrievers written in Python behind the same `retrieve` step as the indexes (`k`, traces and
counts alike): a `lmc.Retrieve` subclass with `forward(query[, k])`, as DSPy programs write them,
or any class with such a method, named in `.lmp` as `index docs = python("pkg.module:Class")`.

`forward` may return a Prediction (or any object) with `.passages`, a dict with "passages", or
the passages themselves: texts, or dicts with "text" (or DSPy's "long_text").
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lmc.errors import USER_CODE_ERRORS, RunError, what_it_raised


class RetrieverFailed(RunError):
    """The user's retriever raised, or returned something that holds no passages."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name} {problem}")
        self.problem = problem


class PythonRetriever:
    kind = "python"

    def __init__(self, retriever: Any):
        # A class named by path is made with its defaults, as `DummyRetriever()` would be.
        if isinstance(retriever, type):
            try:
                retriever = retriever()
            except USER_CODE_ERRORS as error:  # the user's constructor may raise anything
                raise RetrieverFailed(
                    retriever.__name__,
                    f"cannot be made with its defaults ({retriever.__name__}() "
                    f"{what_it_raised(error)}); give its parameters defaults",
                ) from None
        self.retriever = retriever
        # DSPy's retrievers answer `forward(query, k)`; its retrieval models (`rm`) are called.
        forward = getattr(self.retriever, "forward", None) or self.retriever
        if not callable(forward):
            raise RetrieverFailed(
                type(self.retriever).__name__, "has no forward(query) method to retrieve with"
            )
        self._forward = forward
        self._takes_k = "k" in inspect.signature(forward).parameters

    def search(self, query: str, k: int) -> list[str]:
        name = type(self.retriever).__name__
        try:
            result = self._forward(query, k=k) if self._takes_k else self._forward(query)
        except USER_CODE_ERRORS as error:  # the user's code may raise anything; it fails this step
            problem = what_it_raised(error)
            raise RetrieverFailed(f"{name}.forward", problem) from None
        return passages(result, name)[:k]


def passages(result: Any, name: str) -> list[str]:
    found = result.get("passages") if isinstance(result, Mapping) else result
    found = getattr(found, "passages", found)
    if isinstance(found, str) or not isinstance(found, list | tuple):
        raise RetrieverFailed(
            f"{name}.forward",
            f"returned {type(result).__name__}; expected passages: a list of texts, or something "
            "with .passages",
        )
    return [_text(item, name) for item in found]


def _text(item: Any, name: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        for key in ("text", "long_text"):
            if isinstance(item.get(key), str):
                return str(item[key])
    text = getattr(item, "long_text", getattr(item, "text", None))
    if isinstance(text, str):
        return text
    raise RetrieverFailed(f"{name}.forward", f"returned a passage that is not text: {item!r}")
