"""lmc: a compiler for language-model programs.

Declare what each LM step does (a signature), wire steps into a program, in a `.lmp` file or in
Python, and lmc checks it before any LM call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmc.backends.clients import LM
    from lmc.builder.build import build
    from lmc.builder.evaluate import Evaluate
    from lmc.builder.functions import function, tool
    from lmc.builder.modules import (
        ChainOfThought,
        IndexSpec,
        Module,
        Predict,
        ReAct,
        Retrieve,
        bm25,
    )
    from lmc.builder.optimize import BootstrapFewShot, compile
    from lmc.builder.signature import InputField, OutputField, Signature
    from lmc.compiler.program import Program, load, loads
    from lmc.diagnostics import ProgramError
    from lmc.errors import InputError, LmcError, RunError
    from lmc.runtime.context import RunContext, configure, context, inspect_history
    from lmc.runtime.prediction import Example, Prediction

# Each public name -> the module that defines it. `import lmc` loads none of them: the command
# line (`lmc check`, `lmc --help`) and scripts that use one corner of lmc should not pay for
# pydantic, networkx, rich and jinja2 at import. The TYPE_CHECKING imports above are the same
# names, so type checkers and editors see what users get.
_HOMES: dict[str, str] = {
    "LM": "lmc.backends.clients",
    "BootstrapFewShot": "lmc.builder.optimize",
    "ChainOfThought": "lmc.builder.modules",
    "Evaluate": "lmc.builder.evaluate",
    "Example": "lmc.runtime.prediction",
    "IndexSpec": "lmc.builder.modules",
    "InputField": "lmc.builder.signature",
    "InputError": "lmc.errors",
    "LmcError": "lmc.errors",
    "ProgramError": "lmc.diagnostics",
    "RunError": "lmc.errors",
    "Module": "lmc.builder.modules",
    "OutputField": "lmc.builder.signature",
    "Predict": "lmc.builder.modules",
    "Prediction": "lmc.runtime.prediction",
    "Program": "lmc.compiler.program",
    "ReAct": "lmc.builder.modules",
    "Retrieve": "lmc.builder.modules",
    "RunContext": "lmc.runtime.context",
    "Signature": "lmc.builder.signature",
    "bm25": "lmc.builder.modules",
    "build": "lmc.builder.build",
    "function": "lmc.builder.functions",
    "inspect_history": "lmc.runtime.context",
    "tool": "lmc.builder.functions",
    "compile": "lmc.builder.optimize",
    "configure": "lmc.runtime.context",
    "context": "lmc.runtime.context",
    "load": "lmc.compiler.program",
    "loads": "lmc.compiler.program",
}

__all__ = [
    "LM",
    "BootstrapFewShot",
    "ChainOfThought",
    "Evaluate",
    "Example",
    "IndexSpec",
    "InputError",
    "InputField",
    "LmcError",
    "Module",
    "OutputField",
    "Predict",
    "Prediction",
    "Program",
    "ProgramError",
    "ReAct",
    "Retrieve",
    "RunContext",
    "RunError",
    "Signature",
    "bm25",
    "build",
    "compile",
    "configure",
    "context",
    "function",
    "inspect_history",
    "load",
    "loads",
    "tool",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lmc' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
