"""Lark's parse tree -> the frozen syntax nodes of `lmc.syntax.tree`, with spans and comments.

One method per grammar rule (Lark dispatches by the rule's name); errors that the grammar cannot
express (an unknown type, a bad escape, a keyword as a name) go to `diagnostics`, so a file
reports them all at once.
"""

from __future__ import annotations

import inspect
from bisect import bisect_left
from dataclasses import replace
from typing import Any, TypeVar

from lark import Token, Transformer, v_args
from lark.tree import Meta

from lmc.diagnostics import Diagnostics, ProgramError, Span, did_you_mean
from lmc.signatures import FieldSpec, FunctionSpec, ModuleKind, SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.lark_parser import KEYWORDS
from lmc.types import SCALAR_NAMES, STR, UNKNOWN, ListOf, LmType, OneOf, OptionalOf, Scalar

_MODULES: dict[str, ModuleKind] = {
    "predict": "predict",
    "chain_of_thought": "chain_of_thought",
    "react": "react",
}

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")

_Node = TypeVar(
    "_Node",
    ast.Assign,
    ast.ForLoop,
    ast.Return,
    ast.SignatureDecl,
    ast.IndexDecl,
    ast.ProgramDecl,
    ast.MetricDecl,
)


@v_args(meta=True)
class ToSyntax(Transformer[Token, Any]):
    def __init__(self, file: str, text: str, comments: list[Token]):
        super().__init__()
        self.file = file
        self.text = text
        self.diagnostics = Diagnostics()
        self._comments = [((c.line or 0, c.column or 0), str(c.value).rstrip()) for c in comments]
        self._comment_positions = [p for p, _ in self._comments]
        self._claimed: set[int] = set()

    # spans ---------------------------------------------------------------------------------------

    def span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 1, 1, 1, 1)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def tspan(self, token: Token) -> Span:
        line, column = token.line or 1, token.column or 1
        return Span(self.file, line, column, token.end_line or line, token.end_column or column)

    def span_of_text(self) -> Span:
        return Span(self.file, 1, 1, 1, len(self.text) + 1)

    def name(self, token: Token) -> str:
        value = str(token)
        if value in KEYWORDS:
            self.diagnostics.error(self.tspan(token), f"expected a name, found keyword '{value}'")
        return value

    # comments ------------------------------------------------------------------------------------

    def _take_comments(self, start: tuple[int, int], end: tuple[int, int]) -> list[int]:
        first = bisect_left(self._comment_positions, start)
        taken = []
        for i in range(first, len(self._comments)):
            if self._comment_positions[i] >= end:
                break
            if i not in self._claimed:
                self._claimed.add(i)
                taken.append(i)
        return taken

    def attach(
        self, spans: list[Span], container: Span
    ) -> tuple[list[ast.Comments], tuple[str, ...]]:
        """Give each child the comments before it and the one after it on its last line.

        Comments inside a child that no nested container claimed move above that child, so
        formatting never drops a comment.
        """
        leading: list[list[str]] = [[] for _ in spans]
        trailing: list[str | None] = [None for _ in spans]
        end_comments: list[str] = []
        previous_end = (container.line, container.column)
        for i, span in enumerate([*spans, None]):
            stop = (
                (span.end_line, span.end_column)
                if span
                else (container.end_line, container.end_column)
            )
            for index in self._take_comments(previous_end, stop):
                position, text = self._comments[index]
                if i > 0 and trailing[i - 1] is None and position[0] == spans[i - 1].end_line:
                    trailing[i - 1] = text
                elif span is None:
                    end_comments.append(text)
                else:
                    leading[i].append(text)
            previous_end = stop
        return [
            ast.Comments(tuple(lead), trail) for lead, trail in zip(leading, trailing, strict=True)
        ], tuple(end_comments)

    def with_comments(
        self, nodes: list[_Node], container: Span
    ) -> tuple[tuple[_Node, ...], tuple[str, ...]]:
        attached, end_comments = self.attach([n.span for n in nodes], container)
        return tuple(
            replace(n, comments=c) for n, c in zip(nodes, attached, strict=True)
        ), end_comments

    # literals ------------------------------------------------------------------------------------

    def string_value(self, token: Token) -> str:
        return self.string_with_columns(token)[0]

    def string_with_columns(self, token: Token) -> tuple[str, list[int]]:
        """The string's text, and the file column each of its characters came from."""
        raw = str(token)
        if token.type == "LONG_STRING":
            return inspect.cleandoc(raw[3:-3]), []
        body, out, columns, i = raw[1:-1], [], [], 0
        first = (token.column or 1) + 1
        while i < len(body):
            char = body[i]
            columns.append(first + i)
            if char == "\\":
                escape = body[i + 1]
                digits = body[i + 2 : i + 6]
                if escape == "u" and len(digits) == 4 and set(digits) <= _HEX:
                    out.append(chr(int(digits, 16)))
                    i += 6
                    continue
                if escape not in _ESCAPES:
                    line = token.line or 1
                    self.diagnostics.error(
                        Span(self.file, line, first + i, line, first + i + 2),
                        f"unknown escape '\\{escape}' in string; expected \\\", \\\\, \\n, "
                        "\\r, \\t or \\uXXXX",
                    )
                out.append(_ESCAPES.get(escape, escape))
                i += 2
            else:
                out.append(char)
                i += 1
        return "".join(out), columns

    # types ---------------------------------------------------------------------------------------

    def type(self, meta: Meta, children: list[Any]) -> LmType:
        name_token: Token = children[0]
        written = next((c for c in children[1:] if isinstance(c, list)), None)  # `[...]`, if any
        args: list[Any] = written or []
        optional = any(isinstance(c, Token) and c.type == "OPTIONAL_MARK" for c in children)
        name = str(name_token)
        span = self.span(meta)
        resolved: LmType = UNKNOWN
        if name in SCALAR_NAMES:
            if written is not None:  # `str[]` too
                self.diagnostics.error(span, f"'{name}' takes no type arguments")
            resolved = Scalar(name)
        elif name == "list":
            if len(args) != 1 or not isinstance(args[0], LmType):
                self.diagnostics.error(span, "expected one element type: list[T]")
            else:
                resolved = ListOf(args[0])
        elif name == "literal":
            choices = [a for a in args if isinstance(a, str)]
            if not args or len(choices) != len(args):
                self.diagnostics.error(span, 'expected strings: literal["a", "b", ...]')
            elif len(set(choices)) != len(choices):
                self.diagnostics.error(span, "a literal type lists each choice once")
            else:
                resolved = OneOf(tuple(choices))
        else:
            self.diagnostics.error(
                self.tspan(name_token),
                f"unknown type '{name}'; expected str, int, float, bool, list[T], T? or "
                f'literal["a", ...]{did_you_mean(name, [*SCALAR_NAMES, "list", "literal"])}',
            )
        return (
            OptionalOf(resolved) if optional and not isinstance(resolved, OptionalOf) else resolved
        )

    def type_args(self, meta: Meta, children: list[Any]) -> list[Any]:
        # Numbers parse here only so that `literal[1]` gets a message about types, not tokens.
        return [
            c
            if not isinstance(c, Token)
            else self.string_value(c)
            if c.type != "NUMBER"
            else float(c)
            for c in children
        ]

    # signatures ----------------------------------------------------------------------------------

    def field(self, meta: Meta, children: list[Any]) -> tuple[str, FieldSpec]:
        direction, name, type_, *rest = children
        desc = rest[0] if rest else None
        return str(direction), FieldSpec(self.name(name), type_, desc, self.span(meta))

    def instruction(self, meta: Meta, children: list[Token]) -> str:
        return self.string_value(children[0])

    description = instruction

    def signature(self, meta: Meta, children: list[Any]) -> ast.SignatureDecl:
        return self.block_signature(meta, children[1], children[2:])

    def function_decl(self, meta: Meta, children: list[Any]) -> ast.FunctionDecl:
        target = children[2]
        declared = self.block_signature(meta, children[1], children[3:])
        return ast.FunctionDecl(
            FunctionSpec(self.string_value(target), declared.signature),
            declared.span,
            field_comments=declared.field_comments,
            end_comments=declared.end_comments,
            name_span=declared.name_span,
            target_span=self.tspan(target),
        )

    def block_signature(self, meta: Meta, name_token: Token, rest: list[Any]) -> ast.SignatureDecl:
        """`NAME { "instruction" input ... output ... }`, as signatures and functions
        write it."""
        name = self.name(name_token)
        rest = list(rest)
        instruction = rest.pop(0) if rest and isinstance(rest[0], str) else None
        span = self.span(meta)
        field_comments, end_comments = self.attach([f.span for _, f in rest], span)
        spec = SignatureSpec(
            name,
            tuple(f for d, f in rest if d == "input"),
            tuple(f for d, f in rest if d == "output"),
            instruction,
            span,
        )
        # Comments follow the fields in their canonical order: inputs, then outputs.
        ordered = [c for (d, _), c in zip(rest, field_comments, strict=True) if d == "input"] + [
            c for (d, _), c in zip(rest, field_comments, strict=True) if d == "output"
        ]
        return ast.SignatureDecl(
            spec,
            span,
            field_comments=tuple(ordered),
            end_comments=end_comments,
            name_span=self.tspan(name_token),
        )

    def short_signature(self, meta: Meta, children: list[Token]) -> ast.SignatureDecl:
        name, text = self.name(children[1]), children[2]
        spec, valid = self.inline_signature(text, name)
        return ast.SignatureDecl(
            spec, self.span(meta), name_span=self.tspan(children[1]), valid=valid
        )

    def inline_signature(self, token: Token, name: str | None) -> tuple[SignatureSpec, bool]:
        # The parser builds this transformer, and a signature written as a string is parsed by
        # the parser again: imported here, not at the top, to keep the two modules' load order.
        from lmc.syntax.parser import parse_signature_text

        text, columns = self.string_with_columns(token)
        try:
            return parse_signature_text(text, name, at=self.tspan(token), columns=columns), True
        except ProgramError as error:
            self.diagnostics.extend(error.diagnostics)
            return SignatureSpec(name, (), (), None, self.tspan(token)), False

    def sig_text(
        self, meta: Meta, children: list[tuple[FieldSpec, ...]]
    ) -> tuple[tuple[FieldSpec, ...], tuple[FieldSpec, ...]]:
        return children[0], children[1]

    def sig_fields(self, meta: Meta, children: list[FieldSpec]) -> tuple[FieldSpec, ...]:
        return tuple(children)

    def sig_field(self, meta: Meta, children: list[Any]) -> FieldSpec:
        type_ = children[1] if len(children) > 1 else STR
        return FieldSpec(self.name(children[0]), type_, None, self.span(meta))

    # indexes and metrics -------------------------------------------------------------------------

    def index_arg(self, meta: Meta, children: list[Token]) -> tuple[Token | None, Token]:
        return (children[0], children[1]) if len(children) == 2 else (None, children[0])

    def index_decl(self, meta: Meta, children: list[Any]) -> ast.IndexDecl:
        _, name, kind, *args = children
        span = self.span(meta)
        path: str | None = None
        text_field = "text"
        for key, value in args:
            if key is None and path is None:
                path = self.string_value(value)
            elif key is not None and str(key) == "text":
                text_field = self.string_value(value)
            else:
                where = self.tspan(key) if key is not None else self.tspan(value)
                what = f"option '{key}'" if key is not None else "positional argument"
                self.diagnostics.error(
                    where,
                    f'unexpected {what}; expected {kind}("corpus.jsonl", text="FIELD")',
                )
        if path is None:
            self.diagnostics.error(span, f'expected a corpus path: {kind}("corpus.jsonl")')
            path = ""
        return ast.IndexDecl(
            self.name(name),
            str(kind),
            path,
            text_field,
            span,
            name_span=self.tspan(name),
            kind_span=self.tspan(kind),
        )

    def metric_decl(self, meta: Meta, children: list[Token]) -> ast.MetricDecl:
        _, name, field = children
        return ast.MetricDecl(
            str(name),
            self.name(field),
            self.span(meta),
            name_span=self.tspan(name),
            field_span=self.tspan(field),
        )

    # programs ------------------------------------------------------------------------------------

    def param(self, meta: Meta, children: list[Any]) -> FieldSpec:
        return FieldSpec(self.name(children[0]), children[1], None, self.span(meta))

    def program(self, meta: Meta, children: list[Any]) -> ast.ProgramDecl:
        _, name, inputs, outputs, (body, end_comments) = children
        return ast.ProgramDecl(
            self.name(name),
            inputs,
            outputs,
            body,
            self.span(meta),
            end_comments=end_comments,
            name_span=self.tspan(name),
        )

    def params(self, meta: Meta, children: list[FieldSpec]) -> tuple[FieldSpec, ...]:
        return tuple(children)

    def block(self, meta: Meta, children: list[Any]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        return self.with_comments(children, self.span(meta))

    def assign(self, meta: Meta, children: list[Any]) -> ast.Assign:
        annotation = children[1] if len(children) == 3 else None
        return ast.Assign(self.name(children[0]), children[-1], self.span(meta), type=annotation)

    def assign_type(self, meta: Meta, children: list[LmType]) -> LmType:
        return children[0]

    def for_loop(self, meta: Meta, children: list[Any]) -> ast.ForLoop:
        _, var, _, _, count, (body, end_comments) = children
        return ast.ForLoop(self.name(var), count, body, self.span(meta), end_comments=end_comments)

    def return_stmt(self, meta: Meta, children: list[Any]) -> ast.Return:
        return ast.Return(tuple(children[1:]), self.span(meta))

    def binding(self, meta: Meta, children: list[Any]) -> ast.Binding:
        return ast.Binding(self.name(children[0]), children[1], self.span(meta))

    def step_call(self, meta: Meta, children: list[Any]) -> ast.StepCall:
        module = _MODULES[str(children[0])]
        learned = children.pop() if isinstance(children[-1], ast.Learned) else None
        options = children.pop() if isinstance(children[-1], tuple) else ()
        assert all(isinstance(o, ast.StepOption) for o in options)
        return ast.StepCall(
            module, children[1], tuple(children[2:]), self.span(meta), learned, options
        )

    def step_options(self, meta: Meta, children: list[Any]) -> tuple[ast.StepOption, ...]:
        return tuple(children[1:])

    def step_option(self, meta: Meta, children: list[Any]) -> ast.StepOption:
        name, value = children
        if isinstance(value, Token):
            value = self.number_value(value)
        return ast.StepOption(self.name(name), value, self.span(meta), self.tspan(name))

    def name_list(self, meta: Meta, children: list[Token | None]) -> tuple[str, ...]:
        return tuple(self.name(c) for c in children if c is not None)

    def function_call(self, meta: Meta, children: list[Any]) -> ast.FunctionCall:
        function = children[1]
        return ast.FunctionCall(
            self.name(function), tuple(children[2:]), self.span(meta), self.tspan(function)
        )

    def step_reuse(self, meta: Meta, children: list[Any]) -> ast.StepReuse:
        step = children[0]
        return ast.StepReuse(
            self.name(step), tuple(children[1:]), self.span(meta), self.tspan(step)
        )

    # learned parameters --------------------------------------------------------------------------

    def learned(self, meta: Meta, children: list[tuple[str, Any]]) -> ast.Learned:
        instruction: str | None = None
        demos: list[ast.DemoFields] = []
        nearest: ast.Nearest | None = None
        for kind, value in children:
            if kind == "demo":
                demos.append(value)
            elif kind == "nearest":
                if nearest is not None:
                    self.diagnostics.error(value.span, "a step has one nearest pool")
                nearest = nearest or value
            elif instruction is None:
                instruction = value
            else:
                self.diagnostics.error(self.span(meta), "a step has one learned instruction")
        return ast.Learned(instruction, tuple(demos), self.span(meta), nearest)

    def learned_text(self, meta: Meta, children: list[Token]) -> tuple[str, Any]:
        word, text = children
        if str(word) != "instruction":
            self.diagnostics.error(
                self.tspan(word),
                f"unknown learned parameter '{word}'; expected instruction \"...\", "
                "demo { field: value ... } or nearest K { demo ... }",
            )
        return "instruction", self.string_value(text)

    def learned_demo(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        word, *fields = children
        if str(word) != "demo":
            self.diagnostics.error(
                self.tspan(word),
                f"unknown learned parameter '{word}'; expected demo {{ field: value ... }}, "
                'instruction "..." or nearest K { demo ... }',
            )
        return "demo", self.demo_fields(meta, fields)

    def learned_nearest(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        word, number, *rest = children
        if str(word) != "nearest":
            self.diagnostics.error(
                self.tspan(word),
                f"unknown learned parameter '{word}'; expected nearest K {{ demo ... }}, "
                'instruction "..." or demo { field: value ... }',
            )
        kind = "bm25"
        if rest and isinstance(rest[0], Token):
            by, kind_token, *rest = rest
            if str(by) != "by":
                self.diagnostics.error(
                    self.tspan(by), f"expected 'by' and how demos are ranked, found '{by}'"
                )
            kind = str(kind_token)
        demos = tuple(rest)
        return "nearest", ast.Nearest(self.number_value(number), kind, demos, self.span(meta))

    def pool_demo(self, meta: Meta, children: list[Any]) -> ast.DemoFields:
        word, *fields = children
        if str(word) != "demo":
            self.diagnostics.error(
                self.tspan(word),
                f"expected demo {{ field: value ... }} in a nearest pool, found '{word}'",
            )
        return self.demo_fields(meta, fields)

    def demo_fields(self, meta: Meta, fields: list[tuple[str, Any]]) -> ast.DemoFields:
        names = [name for name, _ in fields]
        for name in {n for n in names if names.count(n) > 1}:
            self.diagnostics.error(self.span(meta), f"a demo gives field '{name}' twice")
        return tuple(fields)

    def demo_field(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        return self.name(children[0]), children[1]

    def v_string(self, meta: Meta, children: list[Token]) -> str:
        return self.string_value(children[0])

    def v_number(self, meta: Meta, children: list[Token]) -> int | float:
        return self.number_value(children[0])

    def v_negative(self, meta: Meta, children: list[Token]) -> int | float:
        return -self.number_value(children[0])

    def v_true(self, meta: Meta, children: list[Token]) -> bool:
        return True

    def v_false(self, meta: Meta, children: list[Token]) -> bool:
        return False

    def v_name(self, meta: Meta, children: list[Token]) -> None:
        if str(children[0]) != "null":
            self.diagnostics.error(
                self.tspan(children[0]),
                f"expected a value (a string, a number, true, false, null, [...] or {{...}}), "
                f"found '{children[0]}'",
            )
        return None

    def v_list(self, meta: Meta, children: list[Any]) -> list[Any]:
        return list(children)

    def v_object(self, meta: Meta, children: list[tuple[str, Any]]) -> dict[str, Any]:
        return dict(children)

    def v_pair(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        return self.string_value(children[0]), children[1]

    def signature_ref(self, meta: Meta, children: list[Token]) -> ast.SignatureRef:
        token = children[0]
        if token.type == "STRING":
            spec, valid = self.inline_signature(token, None)
            return ast.SignatureRef(None, spec, self.tspan(token), valid)
        return ast.SignatureRef(self.name(token), None, self.tspan(token))

    def arg(self, meta: Meta, children: list[Any]) -> ast.Arg:
        return ast.Arg(self.name(children[0]), children[1], self.span(meta))

    # expressions ---------------------------------------------------------------------------------

    def name_ref(self, meta: Meta, children: list[Token]) -> ast.NameRef:
        return ast.NameRef(self.name(children[0]), self.span(meta))

    def field_ref(self, meta: Meta, children: list[Token]) -> ast.FieldRef:
        return ast.FieldRef(self.name(children[0]), str(children[1]), self.span(meta))

    def string(self, meta: Meta, children: list[Token]) -> ast.Constant:
        return ast.Constant(self.string_value(children[0]), self.span(meta))

    def number(self, meta: Meta, children: list[Token]) -> ast.Constant:
        return ast.Constant(self.number_value(children[0]), self.span(meta))

    def negative_number(self, meta: Meta, children: list[Token]) -> ast.Constant:
        return ast.Constant(-self.number_value(children[0]), self.span(meta))

    def number_value(self, token: Token) -> int | float:
        text = str(token)
        if "." in text:
            return float(text)
        try:
            return int(text)
        except ValueError:  # longer than Python reads as a whole number
            self.diagnostics.error(
                self.tspan(token), f"a whole number of {len(text)} digits is too long"
            )
            return 0

    def true(self, meta: Meta, children: list[Token]) -> ast.Constant:
        return ast.Constant(True, self.span(meta))

    def false(self, meta: Meta, children: list[Token]) -> ast.Constant:
        return ast.Constant(False, self.span(meta))

    def list_expr(self, meta: Meta, children: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(children), self.span(meta))

    def concat(self, meta: Meta, children: list[Any]) -> ast.Concat:
        return ast.Concat(children[0], children[1], self.span(meta))

    def retrieve(self, meta: Meta, children: list[Any]) -> ast.Retrieve:
        _, index, *args = children
        return ast.Retrieve(self.name(index), tuple(args), self.span(meta), self.tspan(index))

    # file ----------------------------------------------------------------------------------------

    def start(self, meta: Meta, children: list[Any]) -> ast.Module:
        whole = Span(self.file, 1, 1, 10**9, 1)
        declarations, end_comments = self.with_comments(children, whole)
        return ast.Module(declarations, self.file, end_comments)
