"""lmc: a compiler for language-model programs.

Declare what each LM step does (a signature), wire steps into a program, in a `.lmp` file or in
Python, and lmc checks it before any LM call.
"""

from typing import TYPE_CHECKING, Any

from lmc.backends.clients import LM
from lmc.builder.build import build
from lmc.builder.modules import (
    ChainOfThought,
    IndexSpec,
    Module,
    Predict,
    Prediction,
    Retrieve,
    bm25,
)
from lmc.builder.signature import InputField, OutputField, Signature
from lmc.diagnostics import LmcError
from lmc.program import Program, load, loads
from lmc.runtime.context import RunContext, configure, context

if TYPE_CHECKING:
    from lmc.compiler.session import BootstrapFewShot, compile

__all__ = [
    "LM",
    "BootstrapFewShot",
    "ChainOfThought",
    "IndexSpec",
    "InputField",
    "LmcError",
    "Module",
    "OutputField",
    "Predict",
    "Prediction",
    "Program",
    "Retrieve",
    "RunContext",
    "Signature",
    "bm25",
    "build",
    "compile",
    "configure",
    "context",
    "load",
    "loads",
]


def __getattr__(name: str) -> Any:
    # The compiler loads on first use: running a program should not pay for it at import.
    if name in ("compile", "BootstrapFewShot"):
        from lmc.compiler import session as compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'lmc' has no attribute {name!r}")
