"""Lower one checked program body to its `ProgramGraph`: `ProgramLowering(...).run()`.

Name resolution, argument and type checks, loop unrolling and cycle detection happen in one walk;
errors go to the shared `Diagnostics` so a file reports all of them at once. This module lowers a
program's parameters, results and statements (assignments, loops, returns) and checks the graph
they make, building on one layer a module, all sharing one state:

    lower_steps        steps and calls of Python functions, with their arguments
    lower_expressions  expressions and their types
    lower_state        what each name is bound to, and the graph so far
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from lmc.diagnostics import did_you_mean, quoted_list
from lmc.ir.graph import IndexRef, InputNode, OutputNode, ProgramGraph, RetrieveNode, StepNode
from lmc.ir.lower_state import BROKEN, Binding, LoopIndex, Step, Value
from lmc.ir.lower_steps import StepLowering, rebound_message
from lmc.plugins import PYTHON_RETRIEVER
from lmc.syntax import printer
from lmc.syntax import tree as ast
from lmc.types import accepts, describe

MAX_LOOP_COUNT = 64
# The most nodes a program may have once its loops are unrolled: checked after each statement, so
# `for` loops nested three deep (64 x 64 x 64 copies) stop at the limit instead of unrolling for
# minutes. Programs that size are far beyond what an LM program calls for.
MAX_NODES = 10_000


class ProgramLowering(StepLowering):
    """The walk over one program body; `run` returns its graph."""

    def run(self) -> ProgramGraph:
        seen: set[str] = set()
        for param in self.program.params:
            if param.name in seen:
                self.error(param.span, f"parameter '{param.name}' is declared twice")
                continue
            seen.add(param.name)
            node = InputNode(param.name, param.type, span=param.span)
            self.graph.add(node)
            self.env[param.name] = Value(node.id, "value", param.type)
        seen = set()
        for result in self.program.results:
            if result.name in seen:
                self.error(result.span, f"result '{result.name}' is declared twice")
            else:
                self.graph.add(OutputNode(result.name, result.type, span=result.span))
            seen.add(result.name)
        self.block(self.program.body, in_loop=False)
        if self.too_big:
            return self.graph  # reported; the rest would only repeat it
        for name, result in self.results.items():
            if name not in self.returned:
                self.error(
                    result.span,
                    f"result '{name}' is never returned; expected `return {name} = ...`",
                )
        for value, target, port, span in self.edges:
            if value.node in self.graph and target in self.graph:
                self.graph.connect(value.node, value.port, target, port, span)
        self.report_cycle()
        for index in dict.fromkeys(
            n.index for n in self.graph.nodes() if isinstance(n, RetrieveNode)
        ):
            decl = self.indexes.get(index)
            if decl is None:
                continue  # reported where it is used
            path = (
                decl.path
                if decl.kind == PYTHON_RETRIEVER
                else os.path.abspath(os.path.join(self.base_dir, decl.path))
            )
            self.graph.indexes[index] = IndexRef(
                decl.name, decl.kind, path, decl.text_field, bound=decl.bound
            )
        return self.graph

    def report_cycle(self) -> None:
        if self.graph.is_acyclic():
            return
        import networkx as nx  # only to name the cycle: a checked program has none

        cycle = nx.find_cycle(nx.DiGraph(self.graph.nx))
        steps = [n for n in (self.graph.node(u) for u, _ in cycle) if isinstance(n, StepNode)]
        path = " -> ".join(s.param_key for s in [*steps, steps[0]])
        node = steps[0]
        self.error(node.span, f"cycle: {path}; a step cannot depend on its own output")

    # statements ----------------------------------------------------------------------------------

    def block(self, body: tuple[ast.Statement, ...], in_loop: bool) -> None:
        for statement in body:
            if self.too_big:
                return
            _STATEMENTS[type(statement)](self, statement, in_loop)
            if len(self.graph) > MAX_NODES and not self.too_big:
                self.too_big = True
                self.report_too_big(statement)

    def report_too_big(self, statement: ast.Statement) -> None:
        """The program grew past `MAX_NODES`: said at the outermost loop being unrolled (or at
        the statement, outside loops), with how many copies the loops make."""
        if not self.loops:
            self.error(
                statement.span,
                f"the program has more than {MAX_NODES:,} nodes here; lmc checks programs of "
                f"up to {MAX_NODES:,} nodes",
            )
            return
        copies = " x ".join(str(count) for _, count in self.loops)
        self.error(
            self.loops[0][0].span,
            f"this loop unrolls to more than {MAX_NODES:,} nodes ({copies} copies of the loop "
            f"body); lmc checks programs of up to {MAX_NODES:,} nodes unrolled: use fewer "
            "iterations",
        )

    def assign(self, statement: ast.Assign) -> None:
        bind = _ASSIGNED.get(type(statement.value), ProgramLowering.assign_value)
        if statement.type is not None and type(statement.value) in _ASSIGNED:
            self.error(
                statement.span,
                f"a type annotates a value, and '{statement.target}' is a step or call, typed "
                f"by its signature; expected '{statement.target} = ...' without ': TYPE'",
            )
        self.env[statement.target] = bind(self, statement, statement.value) or BROKEN

    def assign_step(self, statement: ast.Assign, value: ast.StepCall) -> Step | None:
        # Steps bound to one name share learnable parameters: loop copies are the usual case.
        first = self.shared.setdefault(statement.target, value)
        if statement.target in self.reused:
            self.error(value.span, rebound_message(statement.target))
        elif (first.module, first.signature, first.options) != (
            value.module,
            value.signature,
            value.options,
        ):
            self.error(
                value.span,
                f"'{statement.target}' was bound to a {first.module} "
                f"{_signature_text(first.signature)} step at line {first.span.line}; steps "
                "bound to one name share learnable parameters, so expected the same module, "
                "signature and options here (or use another name)",
            )
        return self.step(value, self.graph.fresh_id(statement.target), statement.target)

    def assign_value(self, statement: ast.Assign, value: ast.Expr) -> Value | None:
        lowered = self.expr(value, statement.type, hint=statement.target)
        if lowered is not None and statement.type is not None:
            if not accepts(statement.type, lowered.type):
                self.error(
                    value.span,
                    f"type mismatch: '{statement.target}' is declared "
                    f"{describe(statement.type)}, found {describe(lowered.type)}",
                )
                lowered = None
        return lowered

    def loop(self, statement: ast.ForLoop) -> None:
        count = statement.count
        if not (isinstance(count, ast.Constant) and type(count.value) is int):
            found = (
                f"found {printer.constant(count.value)}"
                if isinstance(count, ast.Constant)
                else "found an expression; the count must be known before the program runs"
            )
            self.error(count.span, f"expected a whole number such as range(2); {found}")
            return
        if not 1 <= count.value <= MAX_LOOP_COUNT:
            self.error(count.span, f"expected a count from 1 to {MAX_LOOP_COUNT} in range(...)")
            return
        self.loops.append((statement, count.value))
        for i in range(count.value):
            if self.too_big:
                break
            self.env[statement.var] = LoopIndex(i)
            self.block(statement.body, in_loop=True)
        self.loops.pop()

    def return_(self, statement: ast.Return, in_loop: bool) -> None:
        if in_loop:
            self.error(statement.span, "expected `return` after the loop, not inside it")
            self.returned.update((b.name, b) for b in statement.bindings)
            return
        for binding in statement.bindings:
            result = self.results.get(binding.name)
            if result is None:
                self.error(
                    binding.span,
                    f"unknown result '{binding.name}'; program {self.program.name} returns "
                    f"{quoted_list(self.results)}" + did_you_mean(binding.name, self.results),
                )
                continue
            if binding.name in self.returned:
                line = self.returned[binding.name].span.line
                self.error(
                    binding.span,
                    f"result '{binding.name}' is returned twice (first at line {line})",
                )
                continue
            self.returned[binding.name] = binding
            self.flow(
                binding.value,
                result.type,
                f"out:{binding.name}",
                "value",
                f"result '{binding.name}'",
            )


def _signature_text(ref: ast.SignatureRef) -> str:
    return (
        ref.name if ref.name is not None else f'"{ref.inline.short_text() if ref.inline else ""}"'
    )


# Dispatch by the syntax tree's node kind, as the printer does; `tests/ir` checks that every kind
# has an entry.
_STATEMENTS: dict[type[Any], Callable[[ProgramLowering, Any, bool], None]] = {
    ast.Assign: lambda lowering, statement, in_loop: lowering.assign(statement),
    ast.ForLoop: lambda lowering, statement, in_loop: lowering.loop(statement),
    ast.Return: ProgramLowering.return_,
}
# What an assignment's right side may be beyond an expression (`assign_value`).
_ASSIGNED: dict[type[Any], Callable[[ProgramLowering, ast.Assign, Any], Binding | None]] = {
    ast.StepReuse: lambda lowering, statement, value: lowering.reuse(value, statement.target),
    ast.FunctionCall: lambda lowering, statement, value: lowering.call(value, statement.target),
    ast.StepCall: ProgramLowering.assign_step,
}
