"""What a program or a step returns: its output fields, read as attributes, as in DSPy."""

from __future__ import annotations

from typing import Any


class Prediction:
    """Named output fields, read as attributes: `pred.answer`."""

    def __init__(self, **fields: Any) -> None:
        self._fields = dict(fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def keys(self) -> list[str]:
        return list(self._fields)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._fields.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prediction) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Prediction({inner})"
