"""What lowering a program body knows as it walks: what names are bound to, and the graph so far.

`LoweringState` is this one state, shared by the layers that build on it, each in its own module:
expressions (`lower_expressions`), then steps and function calls (`lower_steps`), then statements
and the program as a whole (`lower_program`, whose `ProgramLowering` is the one to make).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lmc.diagnostics import Diagnostics, Span
from lmc.ir.graph import ProgramGraph, StepParams
from lmc.signatures import NO_OPTIONS, ModuleKind, SignatureSpec, StepOptions
from lmc.syntax import tree as ast
from lmc.types import LmType


@dataclass(frozen=True)
class Value:
    """A typed value: one output port of a node."""

    node: str
    port: str
    type: LmType


@dataclass(frozen=True)
class Step:
    """A name bound to a step; its fields are read as `name.field`."""

    node: str
    signature: SignatureSpec
    module: ModuleKind
    key: str  # the learnable parameters it reads
    options: StepOptions = NO_OPTIONS

    def field_type(self, name: str) -> LmType | None:
        return next(
            (f.type for f in self.signature.outputs_for(self.module) if f.name == name), None
        )

    def field_names(self) -> list[str]:
        return [f.name for f in self.signature.outputs_for(self.module)]


@dataclass(frozen=True)
class Call:
    """A name bound to a call of a Python function; its results are read as `name.field`."""

    node: str
    signature: SignatureSpec

    def field_type(self, name: str) -> LmType | None:
        field = self.signature.output(name)
        return None if field is None else field.type

    def field_names(self) -> list[str]:
        return [f.name for f in self.signature.outputs]


class Broken:
    """A name whose bound value had an error; uses of it report nothing more."""


@dataclass(frozen=True)
class LoopIndex:
    """The loop variable: a constant in each unrolled copy, made a node only where it is used."""

    value: int


BROKEN = Broken()
Binding = Value | Step | Call | Broken | LoopIndex


class LoweringState:
    """The state of lowering one program body; the layers above add how each part is lowered."""

    def __init__(
        self,
        program: ast.ProgramDecl,
        module: ast.Module,
        base_dir: str,
        diagnostics: Diagnostics,
        broken_signatures: set[str],
    ):
        self.broken_signatures = broken_signatures
        self.program = program
        self.signatures = module.signatures()
        self.indexes = module.indexes()
        self.functions = module.functions()
        self.base_dir = base_dir
        self.diagnostics = diagnostics
        self.graph = ProgramGraph(program.name)
        self.env: dict[str, Binding] = {}
        self.edges: list[tuple[Value, str, str, Span]] = []
        self.returned: dict[str, ast.Binding] = {}
        self.results = {r.name: r for r in program.results}
        self.bind_counts = Counter(_bound_names(program.body))
        self.forward_steps = {
            s.target: s.value
            for s in program.body
            if isinstance(s, ast.Assign)
            and isinstance(s.value, ast.StepCall)
            and self.bind_counts[s.target] == 1
        }
        self.shared: dict[str, ast.StepCall] = {}
        # Names bound to calls of an earlier step (`b = a(...)`): the parameter key they read.
        self.reused: dict[str, str] = {}
        # Learned blocks by parameter key, with where the first one was written.
        self.learned: dict[str, tuple[StepParams, Span]] = {}
        self.constants = 0
        self.loops: list[tuple[ast.ForLoop, int]] = []  # the loops being unrolled, outermost first
        self.too_big = False  # past `MAX_NODES`: reported once, and nothing more is unrolled

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.error(span, message)


def _bound_names(body: tuple[ast.Statement, ...]) -> list[str]:
    names: list[str] = []
    for statement in body:
        if isinstance(statement, ast.Assign):
            names.append(statement.target)
        elif isinstance(statement, ast.ForLoop):
            names += [statement.var, *_bound_names(statement.body)]
    return names
