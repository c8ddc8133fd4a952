"""Backends by name. A third-party backend registers under a new name; a clash is an error."""

from __future__ import annotations

from collections.abc import Callable

from lmc.backends.base import Backend

_FACTORIES: dict[str, Callable[[], Backend]] = {}


def register(name: str, factory: Callable[[], Backend]) -> None:
    if name in _FACTORIES:
        raise ValueError(f"a backend named '{name}' is already registered")
    _FACTORIES[name] = factory


def names() -> list[str]:
    return sorted(_FACTORIES)


def get(name: str) -> Backend:
    """The backend called `name`; `KeyError` names the ones there are."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise KeyError(f"unknown backend '{name}'; expected one of {', '.join(names())}") from None


def _register_builtins() -> None:
    from lmc.backends.chat import ChatBackend
    from lmc.backends.completion import CompletionBackend
    from lmc.backends.json_object import JsonBackend

    for backend in (ChatBackend, JsonBackend, CompletionBackend):
        register(backend.name, backend)


_register_builtins()
