"""Running a program's Python functions: imported by the path the program names (once per
process), called with the values flowing in, their results checked against the declared types,
and every call traced with its inputs, outputs and time.

A function is the user's code, named by the user's program: importing it runs its module, as
`import` in a `.py` file would. Nothing else read from a file is imported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lmc.backends.schema import InvalidValues, render_value, validate
from lmc.errors import USER_CODE_ERRORS, RecordFailure, what_it_raised
from lmc.ir.graph import FunctionNode, ProgramGraph
from lmc.plugins import (
    PYTHON_RETRIEVER,
    MissingAttribute,
    Unimportable,
    import_raised,
    import_target,
)
from lmc.runtime.context import RunContext
from lmc.signatures import SignatureSpec
from lmc.types import STR


class FunctionFailed(RecordFailure):
    """A function step raised, or returned what its declared results cannot hold."""

    def __init__(self, step: str, function: str, message: str, kind: str = "function"):
        super().__init__(f"step '{step}': {kind} {function} {message}")
        self.step = step
        self.message = message
        self.reply: str | None = None


class FunctionUnavailable(Unimportable):
    """The function or retriever a program names cannot be imported from where lmc runs."""


_LOADED: dict[str, Callable[..., Any]] = {}
_LOCK = threading.Lock()


def remember(target: str, function: Callable[..., Any]) -> None:
    """`target` is this callable in this process (`@lmc.function` says so): found without an
    import, even where its module cannot be imported by name (`__main__`, a nested function)."""
    with _LOCK:
        _LOADED[target] = function


def load_function(target: str) -> Callable[..., Any]:
    """The callable at `package.module:attribute` (imported on first use, then kept)."""
    with _LOCK:
        found = _LOADED.get(target)
    if found is None:
        # Imported without the lock: the module's `@lmc.function` decorators `remember` their
        # functions, and another thread may be importing the same module (which holds its own
        # import lock while it waits for ours).
        found = _import(target)
        with _LOCK:
            found = _LOADED.setdefault(target, found)
    return found


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    try:
        found = import_target(target)
    except ImportError as error:
        raise FunctionUnavailable(
            f"cannot import {module_name} for {target} ({error}); make it importable: install "
            f"its package, or add the folder that holds {module_name.split('.')[0]} to PYTHONPATH"
        ) from None
    except MissingAttribute:
        if module_name == "__main__":  # defined in the script that built the program
            raise FunctionUnavailable(
                f"{target} was defined in a script, and only that script can run it; define "
                f"{attribute} in a module the script imports and build the program again"
            ) from None
        raise FunctionUnavailable(f"{module_name} has no '{attribute}' (for {target})") from None
    except USER_CODE_ERRORS as error:  # the user's module may raise anything while imported
        raise FunctionUnavailable(import_raised(module_name, target, error)) from None
    if not callable(found):
        raise FunctionUnavailable(f"{target} is not callable")
    return found  # type: ignore[no-any-return]


def import_callables(graph: ProgramGraph) -> None:
    """Import every callable the program names (its functions, its Python retrievers) now, so
    that one that cannot be imported stops a run before its first LM call. Nothing else a
    program or an artifact holds is imported, and nothing in one is evaluated as code."""
    for target in callables(graph):
        load_function(target)


def callables(graph: ProgramGraph) -> list[str]:
    """What the program names by import path, `package.module:attribute`, in order: what
    running it may import."""
    targets = [n.function.target for n in graph.nodes() if isinstance(n, FunctionNode)]
    targets += [i.path for i in graph.indexes.values() if i.kind == PYTHON_RETRIEVER]
    return list(dict.fromkeys(targets))


def _as_declared(signature: SignatureSpec, values: dict[str, Any]) -> dict[str, Any]:
    """The values for the function's parameters: any value flows into a `str` one, as into an LM
    step's, and arrives as the text a step would show (a list of passages as numbered lines)."""
    texts = {f.name for f in signature.inputs if f.type == STR}
    return {
        name: render_value(value) if name in texts and not isinstance(value, str) else value
        for name, value in values.items()
    }


def call_function(
    context: RunContext, node: FunctionNode, values: dict[str, Any], record: int | None
) -> dict[str, Any]:
    """One call of the node's function on `values`: its typed results, by field name."""
    target = node.function.target
    function = load_function(target)
    started = time.perf_counter()
    outputs: dict[str, Any] | None = None
    error: str | None = None
    try:
        returned = function(**_as_declared(node.function.signature, values))
        outputs = validate(
            node.function.signature.outputs, results(node.function.signature, returned)
        )
        return outputs
    except _Unfit as unfit:
        error = f"returned {unfit}"
        raise FunctionFailed(node.id, target, error) from None
    except InvalidValues as invalid:
        error = f"returned a value that does not fit: {invalid}"
        raise FunctionFailed(node.id, target, error) from None
    except USER_CODE_ERRORS as raised:  # the user's code may raise anything; it fails this step
        error = what_it_raised(raised)
        raise FunctionFailed(node.id, target, error) from None
    finally:
        seconds = time.perf_counter() - started
        context.stats.record_function(node.id, seconds)
        if context.trace is not None:
            context.trace.function(
                record=record,
                step=node.id,
                function=target,
                inputs=values,
                outputs=outputs,
                seconds=seconds,
                error=error,
            )


class _Unfit(Exception):
    """A returned value that does not have the declared results' shape."""


def results(signature: SignatureSpec, returned: Any) -> dict[str, Any]:
    """The declared results in what a function returned: the value itself for one result (or a
    mapping with that key), else a mapping, an object with those attributes (a Prediction, a
    dataclass) or a tuple in the declared order."""
    names = [f.name for f in signature.outputs]
    if len(names) == 1:
        if isinstance(returned, Mapping) and set(returned) == {names[0]}:
            return dict(returned)
        return {names[0]: returned}
    if isinstance(returned, Mapping):
        found = {n: returned[n] for n in names if n in returned}
    elif isinstance(returned, tuple) and len(returned) == len(names):
        found = dict(zip(names, returned, strict=True))
    else:
        found = {n: getattr(returned, n) for n in names if hasattr(returned, n)}
    missing = [n for n in names if n not in found]
    if missing:
        raise _Unfit(
            f"{type(returned).__name__} without {', '.join(repr(m) for m in missing)}; expected "
            f"a dict, an object or a tuple with {', '.join(names)}"
        )
    return found
