"""What a program or a step returns: its output fields, read as attributes, as in DSPy."""

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
