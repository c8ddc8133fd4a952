"""What a program or a step returns, and one record of a dataset: named fields read as attributes
and as a dict, as in DSPy.

`lmc.Example(question="...", answer="...").with_inputs("question")` is a Prediction that also
says which fields are inputs (`inputs()`) and which are labels (`labels()`); it is accepted
wherever a dataset is (`lmc.compile`, `BootstrapFewShot.compile`, `lmc.Evaluate`), as dicts are,
and a compiled step's demos are Examples too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Prediction(Mapping[str, Any]):
    """Named output fields, read as attributes (`pred.answer`) and as a dict."""

    def __init__(self, **fields: Any) -> None:
        self._fields = dict(fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prediction) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Prediction({inner})"


class Example(Prediction):
    """Named fields read as attributes and as a dict (as a Prediction's are), that also know
    which of them are the program's inputs."""

    def __init__(self, base: Mapping[str, Any] | None = None, **fields: Any) -> None:
        super().__init__(**{**(base or {}), **fields})
        self._inputs: tuple[str, ...] | None = None

    def with_inputs(self, *names: str) -> Example:
        """A copy that knows which of its fields are the program's inputs."""
        unknown = [n for n in names if n not in self._fields]
        if unknown:
            raise KeyError(f"Example has no field {', '.join(map(repr, unknown))}")
        copy = Example(self._fields)
        copy._inputs = names
        return copy

    def inputs(self) -> Example:
        if self._inputs is None:
            raise ValueError("say which fields are inputs first: example.with_inputs('question')")
        return Example({k: v for k, v in self._fields.items() if k in self._inputs})

    def labels(self) -> Example:
        given = self._inputs or ()
        return Example({k: v for k, v in self._fields.items() if k not in given})

    def toDict(self) -> dict[str, Any]:
        return dict(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and (self._fields, self._inputs) == (
            other._fields,
            other._inputs,
        )

    def __repr__(self) -> str:
        marked = f" (input_keys={set(self._inputs)})" if self._inputs is not None else ""
        return "Example" + super().__repr__().removeprefix("Prediction") + marked
