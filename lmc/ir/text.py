"""The IR's text form: a program graph printed as one `.lmp` file, and read back.

`print_program(graph)` writes the signatures and indexes the graph uses, the program as
straight-line statements in topological order, and its metric. Loops stay unrolled: a later call
of a step that shares its parameters is written `draft_2 = draft(...)`. What passes learned is a
block after the step (`{ instruction "..." demo { ... } nearest 3 by bm25 { demo { ... } } }`);
fused steps are ordinary steps with their own signatures; removed steps are simply absent.
`parse_program` reads the text back, and `parse_program(print_program(g)) == g` for every
well-formed graph.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from lmc.diagnostics import ProgramError
from lmc.ir.graph import (
    ConcatNode,
    ConstNode,
    FunctionNode,
    InputNode,
    ListNode,
    Node,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
    StepParams,
)
from lmc.ir.lower import load_text, select
from lmc.plugins import PYTHON_RETRIEVER
from lmc.signatures import FieldSpec, FunctionSpec, SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.lark_parser import KEYWORDS
from lmc.syntax.printer import print_module
from lmc.types import ListOf, LmType, Nothing, OptionalOf, Unknown

_VALUE_NODES = (ConstNode, ListNode, ConcatNode)


def print_program(graph: ProgramGraph, folder: str | None = None) -> str:
    """`graph` as `.lmp` text; corpus paths relative to `folder` (default: the working folder),
    where the text is meant to be read from."""
    return print_module(to_syntax(graph, folder))


def parse_program(text: str, file: str = "<string>", name: str | None = None) -> ProgramGraph:
    """The graph of the program in `.lmp` text: `name`, or the file's only program."""
    return select(load_text(text, file), name)


def to_syntax(graph: ProgramGraph, folder: str | None = None) -> ast.Module:
    """The syntax tree `print_program` prints."""
    problems = graph.verify()
    if problems:
        raise ValueError(
            "cannot print a malformed program graph: " + "; ".join(p.message for p in problems)
        )
    return _Printer(graph, folder or os.getcwd()).module()


class _Printer:
    def __init__(self, graph: ProgramGraph, folder: str):
        self.graph = graph
        self.folder = folder
        added = {node_id: i for i, node_id in enumerate(graph.node_ids())}
        self.order = graph.topological(key=added.__getitem__)
        inputs = {n.name for n in graph.inputs()}
        # Ids the user wrote keep their names: a loop copy's made-up name (`step@2` as
        # `step_2`) must not take the name of a step the user called `step_2`.
        self.own = {i for i in graph.node_ids() if i.isidentifier() and i.isascii()}
        self.own -= set(KEYWORDS) | inputs
        self.taken = set(KEYWORDS) | inputs | self.own
        self.names: dict[str, str] = {}
        self.next_suffix: dict[str, int] = {}  # base -> the first suffix not known to be taken
        self.first_of_key: dict[str, str] = {}  # parameter key -> name of its first step

    def module(self) -> ast.Module:
        graph = self.graph
        statements = [s for node in self.order if (s := self.statement(node)) is not None]
        outputs = graph.outputs()
        returned = (ast.Binding(out.name, self.source_of(out.id, "value")) for out in outputs)
        statements.append(ast.Return(tuple(returned)))
        program = ast.ProgramDecl(
            graph.name,
            tuple(FieldSpec(n.name, n.type) for n in graph.inputs()),
            tuple(FieldSpec(n.name, n.type) for n in outputs),
            tuple(statements),
        )
        declarations: list[ast.Declaration] = []
        seen: set[SignatureSpec] = set()
        for step in (n for n in self.order if isinstance(n, StepNode)):
            if step.signature.name is not None and step.signature not in seen:
                seen.add(step.signature)
                declarations.append(ast.SignatureDecl(step.signature))
        functions: dict[str, FunctionSpec] = {}
        for node in self.order:
            if isinstance(node, FunctionNode):
                functions.setdefault(node.function.name, node.function)
            elif isinstance(node, StepNode):
                for tool in node.options.tools:
                    functions.setdefault(tool.name, tool)
        declarations += [ast.FunctionDecl(function) for function in functions.values()]
        # In the order the program first reads them: the same order however the graph was built.
        read = dict.fromkeys(n.index for n in self.order if isinstance(n, RetrieveNode))
        for index in (graph.indexes[name] for name in read):
            path = (
                index.path
                if index.kind == PYTHON_RETRIEVER
                else os.path.relpath(index.path, self.folder)
            )
            declarations.append(ast.IndexDecl(index.name, index.kind, path, index.text_field))
        declarations.append(program)
        if graph.metric is not None:
            declarations.append(ast.MetricDecl(graph.metric.name, graph.metric.field))
        return ast.Module(tuple(declarations))

    def name(self, node_id: str) -> str:
        """A binding name for a node: its id where that is a fresh identifier."""
        if node_id in self.own:
            self.names[node_id] = node_id
        elif node_id not in self.names:
            # `gen@2` and `const$3` are ids the lowering made up; the name before them is the
            # user's, and reading the text back makes the same ids, so printing is idempotent.
            base = re.sub(r"\W+", "_", re.split(r"[@$]", node_id)[0]).strip("_") or "value"
            if base[0].isdigit():
                base = f"n_{base}"
            n = self.next_suffix.get(base, 2)
            name = base if base not in self.taken else f"{base}_{n}"
            while name in self.taken:
                n += 1
                name = f"{base}_{n}"
            self.next_suffix[base] = n
            self.taken.add(name)
            self.names[node_id] = name
        return self.names[node_id]

    def inlined(self, node: Node) -> bool:
        """A value node read exactly once is written where it is read, unless its type holds
        the checker's `nothing` (`[]` read as it is): written in place, the reader's type would
        fill that in."""
        return (
            isinstance(node, _VALUE_NODES)
            and len(self.graph.outgoing(node.id)) == 1
            and _spelled(node.type)
        )

    def statement(self, node: Node) -> ast.Statement | None:
        """The binding of a node's value, or None for one written where it is read."""
        write = _STATEMENTS[type(node)]
        if write is None or self.inlined(node):
            return None
        return write(self, node, self.name(node.id))

    def step_binding(self, node: StepNode, name: str) -> ast.Assign:
        return ast.Assign(name, self.step(node, name))

    def function_call(self, node: FunctionNode, name: str) -> ast.Assign:
        args = tuple(ast.Arg(p.name, self.source_of(node.id, p.name)) for p in node.inputs())
        return ast.Assign(name, ast.FunctionCall(node.function.name, args))

    def retrieval(self, node: RetrieveNode, name: str) -> ast.Assign:
        query = ast.Arg("query", self.source_of(node.id, "query"))
        return ast.Assign(
            name, ast.Retrieve(node.index, (query, ast.Arg("k", ast.Constant(node.k))))
        )

    def value_binding(self, node: ConstNode | ListNode | ConcatNode, name: str) -> ast.Assign:
        # The type a value is checked against where nothing else gives it one; the checker's
        # own `nothing` (of `[]`) has no spelling, and `[]` alone lowers to it anyway.
        spelled = node.type if _spelled(node.type) else None
        return ast.Assign(name, self.value(node), type=spelled)

    def step(self, node: StepNode, name: str) -> ast.StepCall | ast.StepReuse:
        args = tuple(ast.Arg(p.name, self.source_of(node.id, p.name)) for p in node.inputs())
        first = self.first_of_key.setdefault(node.param_key, name)
        if first != name:
            return ast.StepReuse(first, args)
        signature = node.signature
        ref = (
            ast.SignatureRef(signature.name)
            if signature.name is not None
            else ast.SignatureRef(None, signature)
        )
        params = self.graph.params[node.param_key]
        learned = None
        if params != StepParams():
            demos = tuple(demo.fields for demo in params.demos)
            nearest = params.nearest
            pool = (
                ast.Nearest(nearest.k, nearest.kind, tuple(d.fields for d in nearest.pool))
                if nearest is not None
                else None
            )
            learned = ast.Learned(params.instruction, demos, nearest=pool)
        options = tuple(ast.StepOption(name, value) for name, value in node.options.written())
        return ast.StepCall(node.module, ref, args, learned=learned, options=options)

    def source_of(self, node_id: str, port: str) -> ast.Expr:
        """The expression for what flows into `node_id`'s input `port`."""
        incoming = self.graph.incoming(node_id)
        source, wire = next((s, w) for s, w in incoming if w.target_field == port)
        node = self.graph.node(source)
        if isinstance(node, InputNode):
            return ast.NameRef(node.name)
        if isinstance(node, StepNode | FunctionNode):
            return ast.FieldRef(self.name(source), wire.source_field)
        if self.inlined(node):
            return self.value(node)
        return ast.NameRef(self.name(source))

    def value(self, node: Node) -> ast.Expr:
        return _VALUES[type(node)](self, node)

    def items(self, node: ListNode) -> ast.Expr:
        return ast.ListExpr(tuple(self.source_of(node.id, p.name) for p in node.inputs()))

    def concat(self, node: ConcatNode) -> ast.Expr:
        return ast.Concat(self.source_of(node.id, "left"), self.source_of(node.id, "right"))


# How each kind of node is written: as a binding of its own (None: never bound; inputs and
# outputs are the program's header), and, for values, as an expression where it is read.
# `tests/ir` checks that every node kind has an entry.
_STATEMENTS: dict[type[Node], Callable[[_Printer, Any, str], ast.Statement] | None] = {
    InputNode: None,
    OutputNode: None,
    StepNode: _Printer.step_binding,
    FunctionNode: _Printer.function_call,
    RetrieveNode: _Printer.retrieval,
    ConstNode: _Printer.value_binding,
    ListNode: _Printer.value_binding,
    ConcatNode: _Printer.value_binding,
}
_VALUES: dict[type[Node], Callable[[_Printer, Any], ast.Expr]] = {
    ConstNode: lambda printer, node: ast.Constant(node.value),
    ListNode: _Printer.items,
    ConcatNode: _Printer.concat,
}


def writes_every_type(graph: ProgramGraph) -> bool:
    """Whether every value's type has a spelling; the known gap of the text form is a value
    typed with the checker's `nothing` (an `[]` no reader types), which may read back typed
    otherwise."""
    return all(_spelled(n.type) for n in graph.nodes() if isinstance(n, _VALUE_NODES))


def _spelled(t: LmType) -> bool:
    if isinstance(t, Nothing | Unknown):
        return False
    if isinstance(t, ListOf):
        return _spelled(t.item)
    if isinstance(t, OptionalOf):
        return _spelled(t.inner)
    return True


def program_error_line(error: ProgramError) -> str:
    """The first diagnostic of an error in a program's text, as `line L, column C: message`."""
    if not error.diagnostics:
        return str(error)
    first = error.diagnostics[0]
    return f"line {first.span.line}, column {first.span.column}: {first.message}"
