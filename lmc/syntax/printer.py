"""Syntax tree -> canonical `.lmp` text (`lmc fmt`).

The canonical form: four-space indents, one blank line between declarations, signature fields in
aligned columns, inputs before outputs, a signature with nothing but plain fields in the short
string form. Comments are kept. `parse(print(m)) == m` and printing is idempotent.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from lmc.signatures import FieldSpec, SignatureSpec
from lmc.strings import is_printable, quote
from lmc.syntax import tree as ast
from lmc.types import ListOf, LmType, OneOf, OptionalOf

INDENT = "    "


def print_module(module: ast.Module) -> str:
    blocks = [_declaration(d) for d in module.declarations]
    tail = "\n".join(module.end_comments)
    text = "\n\n".join(blocks)
    if tail:
        text = f"{text}\n\n{tail}" if text else tail
    return text + "\n" if text else ""


def _with_comments(lines: list[str], comments: ast.Comments, indent: str) -> list[str]:
    out = [indent + c for c in comments.leading] + lines
    if comments.trailing:
        out[-1] = f"{out[-1]}  {comments.trailing}"
    return out


def _declaration(decl: ast.Declaration) -> str:
    lines = _DECLARATIONS[type(decl)](decl)
    return "\n".join(_with_comments(lines, decl.comments, ""))


def _function(decl: ast.FunctionDecl) -> list[str]:
    head = f"function {decl.name} = {quote(decl.function.target)} {{"
    return _fields_block(head, decl.signature, decl.field_comments, decl.end_comments)


def _index(decl: ast.IndexDecl) -> list[str]:
    return [f"index {decl.name} = {decl.kind}({quote(decl.path)}, text={quote(decl.text_field)})"]


def _metric(decl: ast.MetricDecl) -> list[str]:
    return [f"metric {decl.name}({decl.field})"]


# signatures --------------------------------------------------------------------------------------


def is_plain(signature: SignatureSpec) -> bool:
    """Whether the short string form says everything: no instruction, descriptions or literals."""
    fields = signature.inputs + signature.outputs
    return signature.instruction is None and all(
        f.desc is None and not _has_literal(f.type) for f in fields
    )


def _has_literal(t: LmType) -> bool:
    if isinstance(t, OneOf):
        return True
    if isinstance(t, ListOf):
        return _has_literal(t.item)
    if isinstance(t, OptionalOf):
        return _has_literal(t.inner)
    return False


def _signature(decl: ast.SignatureDecl) -> list[str]:
    sig = decl.signature
    has_comments = any(c.leading or c.trailing for c in decl.field_comments) or decl.end_comments
    if is_plain(sig) and not has_comments and sig.inputs and sig.outputs:
        return [f"signature {decl.name} = {quote(sig.short_text())}"]
    head = f"signature {decl.name} {{"
    return _fields_block(head, sig, decl.field_comments, decl.end_comments)


def _fields_block(
    head: str,
    sig: SignatureSpec,
    field_comments: tuple[ast.Comments, ...],
    end_comments: tuple[str, ...],
) -> list[str]:
    """`HEAD { "instruction" input ... output ... }` with aligned fields."""
    lines = [head]
    if sig.instruction is not None:
        lines += [INDENT + line if line else "" for line in text_literal(sig.instruction)]
    fields = [("input", f) for f in sig.inputs] + [("output", f) for f in sig.outputs]
    comments = field_comments or tuple(ast.NO_COMMENTS for _ in fields)
    name_width = max((len(f.name) + 1 for _, f in fields), default=0)
    type_width = max((len(str(f.type)) for _, f in fields if f.desc is not None), default=0)
    for (direction, f), comment in zip(fields, comments, strict=True):
        line = f"{direction:<6} {f.name + ':':<{name_width}} "
        if f.desc is None:
            line += str(f.type)
        else:
            line += f"{f.type!s:<{type_width}} {quote(f.desc)}"
        lines += _with_comments([INDENT + line], comment, INDENT)
    lines += [INDENT + c for c in end_comments]
    return [*lines, "}"]


def text_literal(text: str) -> list[str]:
    """Text as `.lmp` source lines: triple-quoted when that reads back identically, else escaped."""
    triple_safe = (
        '"""' not in text
        and not text.endswith('"')
        and inspect.cleandoc(text) == text
        and is_printable(text)
    )
    if triple_safe and "\n" not in text and text:
        return [f'"""{text}"""']
    if triple_safe and text:
        return ['"""', *text.split("\n"), '"""']
    return [quote(text)]


# programs ----------------------------------------------------------------------------------------


def _params(fields: tuple[FieldSpec, ...]) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in fields)


def _program(decl: ast.ProgramDecl) -> list[str]:
    head = f"program {decl.name}({_params(decl.params)}) -> ({_params(decl.results)}) {{"
    return [head, *_block(decl.body, decl.end_comments, INDENT), "}"]


def _block(
    body: tuple[ast.Statement, ...], end_comments: tuple[str, ...], indent: str
) -> list[str]:
    lines: list[str] = []
    for statement in body:
        lines += _with_comments(_statement(statement, indent), statement.comments, indent)
    return lines + [indent + c for c in end_comments]


def _statement(statement: ast.Statement, indent: str) -> list[str]:
    return _STATEMENTS[type(statement)](statement, indent)


def _assign(statement: ast.Assign, indent: str) -> list[str]:
    target = statement.target
    if statement.type is not None:
        target = f"{target}: {statement.type}"
    spell = _ASSIGNED.get(type(statement.value), _assigned_expr)
    return spell(f"{indent}{target} = ", statement.value, indent)


def _assigned_step(head: str, call: ast.StepCall, indent: str) -> list[str]:
    return _learned(head + _step(call), call.learned, indent)


def _assigned_reuse(head: str, reuse: ast.StepReuse, indent: str) -> list[str]:
    return [f"{head}{reuse.step}({_args(reuse.args)})"]


def _assigned_call(head: str, call: ast.FunctionCall, indent: str) -> list[str]:
    return [f"{head}call {call.function}({_args(call.args)})"]


def _assigned_expr(head: str, value: ast.Expr, indent: str) -> list[str]:
    return [head + expr(value)]


def _return(statement: ast.Return, indent: str) -> list[str]:
    bindings = ", ".join(f"{b.name} = {expr(b.value)}" for b in statement.bindings)
    return [f"{indent}return {bindings}"]


def _for_loop(statement: ast.ForLoop, indent: str) -> list[str]:
    head = f"{indent}for {statement.var} in range({expr(statement.count)}) {{"
    return [head, *_block(statement.body, statement.end_comments, indent + INDENT), indent + "}"]


def _step(call: ast.StepCall) -> str:
    ref = call.signature
    if ref.inline is not None:
        signature = quote(ref.inline.short_text())
    else:
        signature = ref.name or ""
    options = ", ".join(f"{o.name}={_option_value(o.value)}" for o in call.options)
    return f"{call.module} {signature}({_args(call.args)})" + (
        f" with {options}" if options else ""
    )


def _option_value(value: int | float | tuple[str, ...]) -> str:
    return "[" + ", ".join(value) + "]" if isinstance(value, tuple) else constant(value)


def _learned(head: str, learned: ast.Learned | None, indent: str) -> list[str]:
    """A step's learned block: its instruction, one `demo { ... }` per demo, then its nearest
    pool, one demo a line where it fits."""
    if learned is None:
        return [head]
    inner = indent + INDENT
    lines = [head + " {"]
    if learned.instruction is not None:
        text = text_literal(learned.instruction)
        lines.append(f"{inner}instruction {text[0]}")
        lines += [inner + line if line else "" for line in text[1:]]
    for demo in learned.demos:
        lines += _demo(demo, inner)
    if learned.nearest is not None:
        nearest = learned.nearest
        lines.append(f"{inner}nearest {constant(nearest.k)} by {nearest.kind} {{")
        for demo in nearest.demos:
            fields = ", ".join(f"{name}: {value(v)}" for name, v in demo)
            one_line = (
                f"{inner}{INDENT}demo {{ {fields} }}" if demo else f"{inner}{INDENT}demo {{}}"
            )
            if len(one_line) <= DEMO_LINE:
                lines.append(one_line)
            else:
                lines += _demo(demo, inner + INDENT)
        lines.append(f"{inner}}}")
    return [*lines, indent + "}"]


def _demo(demo: ast.DemoFields, indent: str) -> list[str]:
    """`demo { ... }`, a field a line, names aligned."""
    width = max((len(name) + 1 for name, _ in demo), default=0)
    lines = [f"{indent}demo {{"]
    for name, v in demo:
        lines += _demo_field(f"{indent}{INDENT}{name + ':':<{width}} ", v, indent + INDENT)
    return [*lines, f"{indent}}}"]


# A demo's list (an agent's trajectory, say) longer than this on one line gets a line per item.
DEMO_LINE = 100


def _demo_field(head: str, v: Any, indent: str) -> list[str]:
    one_line = head + value(v)
    if len(one_line) <= DEMO_LINE or not isinstance(v, list | tuple) or len(v) < 2:
        return [one_line]
    return [head + "[", *(f"{indent}{INDENT}{value(item)}," for item in v), indent + "]"]


def value(v: Any) -> str:
    """A demo value (JSON's kinds) as `.lmp` text."""
    if v is None:
        return "null"
    if isinstance(v, bool | int | str):
        return constant(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"a demo value {v} has no .lmp spelling (nor a JSON one)")
        return constant(v) if v >= 0 or math.copysign(1, v) > 0 else "-" + constant(-v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(item) for item in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{quote(str(k))}: {value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"a demo value of type {type(v).__name__} has no .lmp spelling")


def _args(args: tuple[ast.Arg, ...]) -> str:
    return ", ".join(f"{a.name}={expr(a.value)}" for a in args)


def expr(e: ast.Expr) -> str:
    return _EXPRESSIONS[type(e)](e)


def _concat(e: ast.Concat) -> str:
    # `+` groups to the left when read, so a right operand that is itself a sum keeps its
    # parentheses.
    right = expr(e.right)
    if isinstance(e.right, ast.Concat):
        right = f"({right})"
    return f"{expr(e.left)} + {right}"


def constant(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    return str(value)


# Dispatch by the syntax tree's node kind, as `lmc.ir.text` does by the graph's; `tests/syntax`
# checks that every kind has an entry.
_DECLARATIONS: dict[type[Any], Callable[[Any], list[str]]] = {
    ast.SignatureDecl: _signature,
    ast.FunctionDecl: _function,
    ast.IndexDecl: _index,
    ast.MetricDecl: _metric,
    ast.ProgramDecl: _program,
}
_STATEMENTS: dict[type[Any], Callable[[Any, str], list[str]]] = {
    ast.Assign: _assign,
    ast.Return: _return,
    ast.ForLoop: _for_loop,
}
# What an assignment's right side may be beyond an expression.
_ASSIGNED: dict[type[Any], Callable[[str, Any, str], list[str]]] = {
    ast.StepCall: _assigned_step,
    ast.StepReuse: _assigned_reuse,
    ast.FunctionCall: _assigned_call,
}
_EXPRESSIONS: dict[type[Any], Callable[[Any], str]] = {
    ast.NameRef: lambda e: e.name,
    ast.FieldRef: lambda e: f"{e.step}.{e.field}",
    ast.Constant: lambda e: constant(e.value),
    ast.ListExpr: lambda e: "[" + ", ".join(expr(i) for i in e.items) + "]",
    ast.Concat: _concat,
    ast.Retrieve: lambda e: f"retrieve {e.index}({_args(e.args)})",
}
