"""`Program`: one checked program, and `load` / `loads` for `.lmp` text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmc.diagnostics import Diagnostic, LmcError, Span, quoted_list
from lmc.ir.graph import ProgramGraph
from lmc.ir.lower import CheckedModule, load_text
from lmc.signatures import FieldSpec
from lmc.syntax import tree as ast
from lmc.syntax.printer import print_module

if TYPE_CHECKING:
    from lmc.runtime.context import RunContext


class Program:
    """A checked program: its graph IR and the syntax it was written (or traced) as.

    Two programs are equal when their graphs are: same steps, wiring, types and parameters,
    whatever the step names, spans and comments.
    """

    def __init__(
        self, ir: ProgramGraph, source: ast.Module, compiled_for: tuple[str, str] | None = None
    ):
        self.ir = ir
        self.source = source
        # (model, backend) a compiled program was optimized on: what it runs on by default.
        self.compiled_for = compiled_for

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def declaration(self) -> ast.ProgramDecl:
        return next(p for p in self.source.programs() if p.name == self.name)

    @property
    def inputs(self) -> tuple[FieldSpec, ...]:
        return self.declaration.params

    @property
    def outputs(self) -> tuple[FieldSpec, ...]:
        return self.declaration.results

    @property
    def metric(self) -> ast.MetricDecl | None:
        return self.source.metric()

    def __call__(self, **inputs: Any) -> Any:
        """Run the program on the current run context (see `lmc.configure`)."""
        return self.run(inputs)

    def run(self, inputs: dict[str, Any], context: RunContext | None = None) -> Any:
        """The outputs, as an `lmc.Prediction`, for one set of inputs."""
        from lmc.builder.modules import Prediction
        from lmc.runtime.eager import run_program

        return Prediction(**run_program(self.ir, self.inputs, inputs, context))

    def to_lmp(self) -> str:
        """The program as canonical `.lmp` text, with the signatures and indexes it uses."""
        return print_module(self.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return self.ir == other.ir

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inputs = ", ".join(f"{f.name}: {f.type}" for f in self.inputs)
        outputs = ", ".join(f"{f.name}: {f.type}" for f in self.outputs)
        return f"<Program {self.name}({inputs}) -> ({outputs}), {len(self.ir.steps())} steps>"


def select(checked: CheckedModule, name: str | None, how: str = "program=") -> Program:
    """The program called `name`, or the file's only program."""
    module = checked.module
    names = list(checked.graphs)
    whole_file = Span(module.file, 1, 1, 1, 1)
    if name is None:
        if len(names) != 1:
            found = f"{len(names)} programs ({quoted_list(names)})" if names else "no program"
            raise LmcError(
                [
                    Diagnostic(
                        whole_file,
                        f"expected one program to run; the file has {found}"
                        + (f": choose one with {how}NAME" if names else ""),
                    )
                ],
                {module.file: checked.source},
            )
        name = names[0]
    if name not in checked.graphs:
        raise LmcError(
            [
                Diagnostic(
                    whole_file, f"no program named '{name}'; the file has {quoted_list(names)}"
                )
            ],
            {module.file: checked.source},
        )
    return Program(checked.graphs[name], _used_by(module, name))


def _used_by(module: ast.Module, name: str) -> ast.Module:
    """The declarations one program needs, in file order: a self-contained `.lmp` file."""
    program = next(p for p in module.programs() if p.name == name)
    signatures, indexes = set(), set()
    stack: list[ast.Statement] = list(program.body)
    while stack:
        statement = stack.pop()
        if isinstance(statement, ast.ForLoop):
            stack += statement.body
        elif isinstance(statement, ast.Assign):
            if isinstance(statement.value, ast.StepCall):
                signatures.add(statement.value.signature.name)
            else:
                indexes |= _indexes_in(statement.value)
        if isinstance(statement, ast.Assign | ast.Return):
            values = (
                [statement.value]
                if isinstance(statement, ast.Assign)
                else [b.value for b in statement.bindings]
            )
            for value in values:
                if isinstance(value, ast.StepCall):
                    for arg in value.args:
                        indexes |= _indexes_in(arg.value)
                else:
                    indexes |= _indexes_in(value)
    kept = tuple(
        d
        for d in module.declarations
        if d is program
        or (isinstance(d, ast.SignatureDecl) and d.name in signatures)
        or (isinstance(d, ast.IndexDecl) and d.name in indexes)
        or isinstance(d, ast.MetricDecl)
    )
    return ast.Module(kept, module.file, module.end_comments if kept == module.declarations else ())


def _indexes_in(expr: ast.Expr) -> set[str]:
    if isinstance(expr, ast.Retrieve):
        return {expr.index} | {i for a in expr.args for i in _indexes_in(a.value)}
    if isinstance(expr, ast.Concat):
        return _indexes_in(expr.left) | _indexes_in(expr.right)
    if isinstance(expr, ast.ListExpr):
        return {i for item in expr.items for i in _indexes_in(item)}
    return set()


def loads(text: str, program: str | None = None, *, file: str = "<string>") -> Program:
    """Parse and check `.lmp` text; return the program named `program`, or the only one."""
    return select(load_text(text, file), program)


def load(path: str | os.PathLike[str], program: str | None = None) -> Program:
    """Read, parse and check a `.lmp` file; return the program named `program`, or the only one."""
    file = os.fspath(path)
    return loads(Path(file).read_text(encoding="utf-8"), program, file=file)
