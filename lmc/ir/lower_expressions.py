"""Lower a program body's expressions to nodes of its graph, checking their types.

Names resolve to what they are bound to (`lower_state`); constants, lists, `+` and `retrieve` each
become a node; `flow` wires a value into a node's input where its type fits. Steps and statements
(`lower_steps`, `lower_program`) build on this layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lmc.diagnostics import Span, did_you_mean, quoted_list
from lmc.ir.graph import ConcatNode, ConstNode, ListNode, RetrieveNode
from lmc.ir.lower_state import Broken, Call, LoopIndex, LoweringState, Step, Value
from lmc.syntax import tree as ast
from lmc.types import (
    BOOL,
    EMPTY_LIST,
    FLOAT,
    INT,
    STR,
    ListOf,
    LmType,
    Nothing,
    OneOf,
    OptionalOf,
    accepts,
    describe,
    join,
)

DEFAULT_K = 3


class ExpressionLowering(LoweringState):
    """How each kind of expression is lowered; made only as part of `ProgramLowering`."""

    def expr(self, e: ast.Expr, expected: LmType | None, hint: str = "") -> Value | None:
        """`e` as a value of the graph; `expected` types literals, `hint` names a retrieval."""
        return _EXPRESSIONS[type(e)](self, e, expected, hint)

    def flow(self, expr: ast.Expr, expected: LmType, target: str, port: str, what: str) -> None:
        """Lower `expr` and wire it into `target.port`, checking that its type fits."""
        value = self.expr(expr, expected)
        if value is None:
            return
        if not accepts(expected, value.type):
            hint = ""
            if isinstance(value.type, OptionalOf) and accepts(expected, value.type.inner):
                hint = "; the value may be missing: declare the input optional (T?)"
            elif isinstance(_required(expected), ListOf) and not isinstance(
                _required(value.type), ListOf
            ):
                hint = "; a single value is never wrapped into a list silently: write [value]"
            self.error(
                expr.span,
                f"type mismatch: {what} expects {describe(expected)}, found "
                f"{describe(value.type)}{hint}",
            )
            return
        self.edges.append((value, target, port, expr.span))

    def unknown_name(self, name: str, span: Span) -> None:
        if self.bind_counts[name]:
            self.error(span, f"'{name}' is used before it is bound")
        else:
            known = [*self.env, *self.forward_steps]
            self.error(span, f"unknown name '{name}'" + did_you_mean(name, known))

    def lookup(self, name: str, span: Span) -> Value | Step | Call | LoopIndex | None:
        """What `name` is bound to here; None once whatever is wrong with it is reported."""
        bound = self.env.get(name)
        if bound is None and name in self.forward_steps:
            # None: its unknown signature is reported where the step is bound.
            return self.forward_step(name)
        if bound is None:
            self.unknown_name(name, span)
            return None
        return None if isinstance(bound, Broken) else bound

    def name(self, e: ast.NameRef) -> Value | None:
        bound = self.lookup(e.name, e.span)
        if bound is None:
            return None
        if isinstance(bound, LoopIndex):
            return self.constant(ast.Constant(bound.value, e.span), None)
        if isinstance(bound, Step | Call):
            fields = ", ".join(f"{e.name}.{f}" for f in bound.field_names())
            what = "a step" if isinstance(bound, Step) else "a function call"
            self.error(e.span, f"'{e.name}' is {what}; expected one of its fields: {fields}")
            return None
        return bound

    def forward_step(self, name: str) -> Step | None:
        call = self.forward_steps[name]
        ref = call.signature
        signature = (
            ref.inline
            if ref.inline is not None
            else (self.signatures[ref.name].signature if ref.name in self.signatures else None)
        )
        return None if signature is None else Step(name, signature, call.module, name)

    def field(self, e: ast.FieldRef) -> Value | None:
        bound = self.lookup(e.step, e.span)
        if bound is None:
            return None
        if isinstance(bound, Value | LoopIndex):
            value_type = bound.type if isinstance(bound, Value) else INT
            self.error(
                e.span,
                f"'{e.step}' is a value of type {value_type}, not a step; "
                f"it has no field '{e.field}'",
            )
            return None
        type_ = bound.field_type(e.field)
        if type_ is None:
            fields = bound.field_names()
            self.error(
                e.span,
                f"{bound.signature.display_name} has no output '{e.field}'; expected "
                f"{quoted_list(fields)}" + did_you_mean(e.field, fields),
            )
            return None
        return Value(bound.node, e.field, type_)

    def fresh(self, base: str) -> str:
        self.constants += 1
        return self.graph.fresh_id(f"{base}${self.constants}")

    def constant(self, e: ast.Constant, expected: LmType | None) -> Value:
        value = e.value
        type_: LmType
        if isinstance(value, bool):
            type_ = BOOL
        elif isinstance(value, int):
            type_ = INT
        elif isinstance(value, float):
            type_ = FLOAT
        else:
            wanted = _required(expected) if expected is not None else None
            type_ = wanted if isinstance(wanted, OneOf) and value in wanted.choices else STR
        node = ConstNode(self.fresh("const"), value, type_, span=e.span)
        self.graph.add(node)
        return Value(node.id, "value", type_)

    def list_(self, e: ast.ListExpr, expected: LmType | None) -> Value | None:
        wanted = _required(expected) if expected is not None else None
        item_expected = wanted.item if isinstance(wanted, ListOf) else None
        items = [self.expr(item, item_expected) for item in e.items]
        if any(i is None for i in items):
            return None
        item_type: LmType = Nothing()
        for item, value in zip(e.items, items, strict=True):
            assert value is not None
            joined = join(item_type, value.type)
            if joined is None:
                self.error(
                    item.span,
                    f"list items must share one type: found {describe(item_type)} and "
                    f"{describe(value.type)}",
                )
                return None
            item_type = joined
        if isinstance(item_type, Nothing) and isinstance(wanted, ListOf):
            item_type = wanted.item
        node = ListNode(self.fresh("list"), len(items), ListOf(item_type), span=e.span)
        self.graph.add(node)
        for i, value in enumerate(items):
            assert value is not None
            self.edges.append((value, node.id, f"item{i}", e.items[i].span))
        return Value(node.id, "value", node.type)

    def concat(self, e: ast.Concat, expected: LmType | None) -> Value | None:
        if isinstance(e.left, ast.ListExpr) and not e.left.items:
            # `[] + xs` is a list of what xs holds: typed by the expected type instead, the empty
            # list could hold `str` where xs holds `str?`, and the program printed with the sum
            # bound to a name of its (joined) type would read back with another empty list.
            right = self.expr(e.right, expected)
            left = self.expr(e.left, right.type if right is not None else expected)
        else:
            left = self.expr(e.left, expected)
            right = self.expr(e.right, left.type if left is not None else expected)
        if left is None or right is None:
            return None
        for side, value in (("left", left), ("right", right)):
            if not isinstance(value.type, ListOf):
                self.error(
                    (e.left if side == "left" else e.right).span,
                    f"'+' joins two lists; the {side} side is {describe(value.type)}",
                )
                return None
        joined = join(left.type, right.type)
        if not isinstance(joined, ListOf):
            self.error(
                e.span,
                f"cannot join {describe(left.type)} and {describe(right.type)} with '+'",
            )
            return None
        if isinstance(joined.item, Nothing):
            wanted = _required(expected) if expected is not None else None
            joined = wanted if isinstance(wanted, ListOf) else EMPTY_LIST
        node = ConcatNode(self.fresh("concat"), joined, span=e.span)
        self.graph.add(node)
        self.edges.append((left, node.id, "left", e.left.span))
        self.edges.append((right, node.id, "right", e.right.span))
        return Value(node.id, "value", joined)

    def retrieve(self, e: ast.Retrieve, hint: str) -> Value | None:
        ok = True
        if e.index not in self.indexes:
            self.error(
                e.index_span,
                unknown_message(
                    "index",
                    e.index,
                    self.indexes,
                    self.signatures,
                    'declare one: index wiki = bm25("corpus.jsonl")',
                ),
            )
            ok = False
        k = DEFAULT_K
        query: ast.Arg | None = None
        seen: set[str] = set()
        for arg in e.args:
            if arg.name in seen:
                self.error(arg.span, f"argument '{arg.name}' is passed twice")
                ok = False
            seen.add(arg.name)
            if arg.name == "query":
                query = arg
            elif arg.name == "k":
                value = arg.value
                if isinstance(value, ast.Constant) and type(value.value) is int and value.value > 0:
                    k = value.value
                else:
                    self.error(value.span, "expected a positive whole number for k, such as k=3")
                    ok = False
            else:
                self.error(
                    arg.span, f"unknown argument '{arg.name}'; retrieve takes query=..., k=N"
                )
                ok = False
        if query is None:
            self.error(e.span, "missing argument 'query'; retrieve takes query=..., k=N")
            ok = False
        node = RetrieveNode(self.fresh(hint or "retrieve"), e.index, k, span=e.span)
        self.graph.add(node)
        if query is not None:
            self.flow(query.value, STR, node.id, "query", "'query'")
        return Value(node.id, "passages", ListOf(STR)) if ok else None


def unknown_message(
    kind: str, name: str, known: Mapping[str, object], other: Mapping[str, object], how: str
) -> str:
    """`unknown KIND 'x'`, with what is declared, a near name, or what `x` is instead."""
    if name in other:
        what, article = ("a signature", "an") if kind == "index" else ("an index", "a")
        return f"'{name}' is {what}, not {article} {kind}"
    if not known:
        plural = "indexes" if kind == "index" else f"{kind}s"
        return f"unknown {kind} '{name}'; no {plural} are declared ({how})"
    return f"unknown {kind} '{name}'; expected one of {quoted_list(known)}" + did_you_mean(
        name, known
    )


def _required(t: LmType) -> LmType:
    return t.inner if isinstance(t, OptionalOf) else t


# Dispatch by the syntax tree's node kind, as the printer does; `tests/ir` checks that every kind
# has an entry.
_EXPRESSIONS: dict[
    type[Any], Callable[[ExpressionLowering, Any, LmType | None, str], Value | None]
] = {
    ast.NameRef: lambda lowering, e, expected, hint: lowering.name(e),
    ast.FieldRef: lambda lowering, e, expected, hint: lowering.field(e),
    ast.Constant: lambda lowering, e, expected, hint: lowering.constant(e, expected),
    ast.ListExpr: lambda lowering, e, expected, hint: lowering.list_(e, expected),
    ast.Concat: lambda lowering, e, expected, hint: lowering.concat(e, expected),
    ast.Retrieve: lambda lowering, e, expected, hint: lowering.retrieve(e, hint),
}
