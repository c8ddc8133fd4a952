"""`lmc.Example`: one record of a dataset, as DSPy writes it.

`lmc.Example(question="...", answer="...").with_inputs("question")` reads as attributes and as a
dict, says which fields are inputs (`inputs()`) and which are labels (`labels()`), and is
accepted wherever a dataset is (`lmc.compile`, `BootstrapFewShot.compile`), as dicts are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Example(Mapping[str, Any]):
    def __init__(self, base: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._fields = {**(base or {}), **fields}
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
        return isinstance(other, Example) and (self._fields, self._inputs) == (
            other._fields,
            other._inputs,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        marked = f" (input_keys={set(self._inputs)})" if self._inputs is not None else ""
        return f"Example({inner}){marked}"
