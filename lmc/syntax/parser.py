"""`.lmp` text -> typed syntax tree (`lmc.syntax`).

Lark parses with positions on; one Transformer builds frozen syntax nodes with spans and keeps the
comments for `lmc fmt`. Syntax errors name the tokens that were expected, in words.
"""

from __future__ import annotations

import inspect
from bisect import bisect_left
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from lmc.diagnostics import Diagnostic, Diagnostics, ProgramError, Span, did_you_mean
from lmc.files import cache_dir
from lmc.signatures import FieldSpec, FunctionSpec, ModuleKind, SignatureSpec
from lmc.syntax import tree as ast
from lmc.types import SCALAR_NAMES, STR, UNKNOWN, ListOf, LmType, OneOf, OptionalOf, Scalar

KEYWORDS = frozenset(
    "signature program input output return import for in range predict chain_of_thought "
    "retrieve index metric true false function call react with".split()
)

_MODULES: dict[str, ModuleKind] = {
    "predict": "predict",
    "chain_of_thought": "chain_of_thought",
    "react": "react",
}

DECLARATION_KEYWORDS = frozenset({"SIGNATURE", "FUNCTION", "INDEX", "PROGRAM", "METRIC"})

# How a terminal is named to the user when it is expected and missing.
TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": 'a """text""" string',
    "NUMBER": "a number",
    "$END": "the end of the file",
}

# Limits on what a `.lmp` text may ask of the parser and every stage after it (each walks the
# syntax tree recursively, as Lark's transformer does): its length, and how deep it nests. A level
# is one of these rules: a type inside `list[...]`, a list, a `retrieve` in an argument, a `for`
# loop inside another, a demo value inside another, and each `+` of a chain (`a + b + c` is two).
MAX_SOURCE_CHARS = 2_000_000
MAX_NESTING = 100
_NESTING_RULES = frozenset(
    {"type_args", "list_expr", "retrieve", "for_loop", "concat", "v_list", "v_object"}
)

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


@cache
def _lark() -> Lark:
    grammar = resources.files("lmc.grammar").joinpath("lmp.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        start=["start", "sig_text"],
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_grammar_cache(),
    )


def _grammar_cache() -> str | bool:
    """Where Lark keeps the analysed grammar: building the LALR tables takes most of a short
    `lmc check`, loading them a few milliseconds. Lark stores the hash of the grammar, its options
    and versions in the file and rebuilds on any difference, or when the file cannot be read (a
    half-written one from a concurrent first run included); so the cache is never stale."""
    folder = cache_dir() / "grammar"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False  # a read-only home: build the tables every time
    return str(folder / "lmp.lark.cache")


def parse(text: str, file: str = "<string>", diagnostics: Diagnostics | None = None) -> ast.Module:
    """Parse `.lmp` source into a syntax tree.

    A syntax error raises `ProgramError` at once. Other errors (an unknown type, a bad escape) go to
    `diagnostics` when given, so the checker can report its own errors beside them; without it,
    they raise.
    """
    if len(text) > MAX_SOURCE_CHARS:
        raise ProgramError(
            [
                Diagnostic(
                    Span(file, 1, 1, 1, 2),
                    f"the file is {len(text):,} characters long; lmc reads .lmp text of up to "
                    f"{MAX_SOURCE_CHARS:,} characters",
                )
            ]
        )
    comments: list[Token] = []
    parser = _lark()
    try:
        tree = _parse_collecting(parser, text, comments)
    except UnexpectedInput as error:
        raise ProgramError([_syntax_diagnostic(error, text, file)], {file: text}) from None
    _check_nesting(tree, file, {file: text})
    builder = _ToSyntax(file, text, comments)
    module = builder.transform(tree)
    if diagnostics is None:
        builder.diagnostics.raise_if_any({file: text})
    else:
        diagnostics.extend(builder.diagnostics.sorted())
    assert isinstance(module, ast.Module)
    return module


def _parse_collecting(parser: Lark, text: str, comments: list[Token]) -> Tree[Token]:
    # Lark's lexer callbacks are fixed at construction; comments are few, so re-lex them here.
    comments.extend(t for t in parser.lex(text, dont_ignore=True) if t.type == "COMMENT")
    return parser.parse(text, start="start")


def parse_signature_text(
    text: str,
    name: str | None = None,
    *,
    at: Span | None = None,
    columns: list[int] | None = None,
) -> SignatureSpec:
    """Parse a DSPy-style string signature, `"context: list[str], question -> answer"`.

    `at` is the string literal's span in a file, `columns` the file column of each character of
    `text` (escapes make them differ), so errors and fields point into the file.
    """
    file = at.file if at else "<signature>"

    def place(span: Span) -> Span:
        if at is None:
            return span
        where = columns or [at.column + 1 + i for i in range(len(text))]
        where = [*where, (where[-1] + 1) if where else at.column + 1]
        start = where[min(span.column, len(where)) - 1]
        end = where[min(max(span.end_column, span.column + 1), len(where)) - 1]
        return Span(at.file, at.line, start, at.line, max(end, start + 1))

    try:
        tree = _lark().parse(text, start="sig_text")
    except UnexpectedInput as error:
        diagnostic = _syntax_diagnostic(error, text, file, start="sig_text")
        raise ProgramError(
            [replace(diagnostic, span=place(diagnostic.span))], {} if at else {file: text}
        ) from None
    try:
        _check_nesting(tree, file, {file: text})
    except ProgramError as error:
        raise ProgramError(
            [replace(d, span=place(d.span)) for d in error.diagnostics], {} if at else {file: text}
        ) from None
    builder = _ToSyntax(file, text, [])
    inputs, outputs = builder.transform(tree)
    placed = Diagnostics()
    placed.extend(replace(d, span=place(d.span)) for d in builder.diagnostics.sorted())
    placed.raise_if_any({} if at else {file: text})
    inputs = tuple(replace(f, span=place(f.span)) for f in inputs)
    outputs = tuple(replace(f, span=place(f.span)) for f in outputs)
    return SignatureSpec(name, inputs, outputs, None, at or builder.span_of_text())


def _check_nesting(tree: Tree[Token], file: str, sources: dict[str, str]) -> None:
    """Raise `ProgramError` at the first place the tree nests deeper than `MAX_NESTING` levels
    (see `_NESTING_RULES`); walked without recursion, before anything recursive walks it."""
    pending: list[tuple[Tree[Token], int, Tree[Token]]] = [(tree, 0, tree)]
    while pending:
        node, depth, parent = pending.pop()
        if node.data in _NESTING_RULES:
            depth += 1
            if depth > MAX_NESTING:
                # A type's arguments are reported at the type: `list[` rather than its `[`.
                meta = (parent if node.data == "type_args" else node).meta
                line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
                raise ProgramError(
                    [
                        Diagnostic(
                            Span(file, line, column, line, column + 1),
                            f"nested more than {MAX_NESTING} levels deep; lmc reads at most "
                            f"{MAX_NESTING} levels of types, lists, loops, retrieves and '+'",
                        )
                    ],
                    sources,
                )
        pending.extend((child, depth, node) for child in node.children if isinstance(child, Tree))


# Syntax errors -----------------------------------------------------------------------------------


def _describe_terminal(name: str) -> str:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    pattern = _lark().get_terminal(name).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _expected_words(expected: set[str]) -> str:
    words = sorted({_describe_terminal(t) for t in expected}, key=lambda w: (w[0] != "'", w))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _expected_before(prefix: str, start: str) -> set[str]:
    """The tokens the grammar accepts after `prefix` (empty if the prefix itself is wrong)."""
    try:
        interactive = _lark().parse_interactive(prefix, start=start)
        interactive.exhaust_lexer()
        accepted: set[str] = interactive.accepts()  # type: ignore[no-untyped-call]
        return {t for t in accepted if t != "COMMENT"}
    except UnexpectedInput:
        return set()


def _unclosed_brace(text: str, before: Token) -> str | None:
    """The header of the innermost `{` still open where `before` stands, e.g. `signature QA`."""
    opened: list[int] = []
    try:
        for token in _lark().lex(text):
            if (token.line, token.column) >= (before.line, before.column):
                break
            if token == "{":
                opened.append(token.line or 1)
            elif token == "}" and opened:
                opened.pop()
    except UnexpectedInput:
        return None
    if not opened:
        return None
    header = text.splitlines()[opened[-1] - 1].split("{")[0].strip()
    return f"`{header}` from line {opened[-1]}"


def _syntax_diagnostic(
    error: UnexpectedInput, text: str, file: str, start: str = "start"
) -> Diagnostic:
    line, column = error.line, error.column
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        span = Span(file, line, column, line, column + 1)
        if char == '"':
            return Diagnostic(
                span,
                "unterminated string: a string closes with '\"' on the same line "
                '(use """...""" for text over several lines)',
            )
        expected = _expected_before(text[:position], start)
        tail = f"; expected {_expected_words(expected)}" if expected else ""
        return Diagnostic(span, f"unexpected character {char!r}{tail}")
    if isinstance(error, UnexpectedEOF):
        lines = text.splitlines() or [""]
        end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic(
            end, f"unexpected end of file; expected {_expected_words(set(error.expected))}"
        )
    assert isinstance(error, UnexpectedToken)
    token = error.token
    expected = set(error.accepts or error.expected)
    if token.type == "$END":
        lines = text.splitlines() or [""]
        end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic(end, f"unexpected end of file; expected {_expected_words(expected)}")
    span = Span(
        file,
        token.line or line,
        token.column or column,
        token.end_line or line,
        token.end_column or column + 1,
    )
    found = f"'{token.value}'"
    if str(token.value) in KEYWORDS and "NAME" in expected:
        found = f"keyword '{token.value}' (keywords cannot be used as names)"
    if "RBRACE" in expected and token.type in DECLARATION_KEYWORDS:
        unclosed = _unclosed_brace(text, token)
        if unclosed:
            return Diagnostic(span, f"expected '}}' to close {unclosed}, found {found}")
    return Diagnostic(span, f"expected {_expected_words(expected)}, found {found}")


# Tree -> syntax ----------------------------------------------------------------------------------

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
class _ToSyntax(Transformer[Token, Any]):
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
        args: list[Any] = next((c for c in children[1:] if isinstance(c, list)), [])
        optional = any(isinstance(c, Token) and c.type == "OPTIONAL_MARK" for c in children)
        name = str(name_token)
        span = self.span(meta)
        resolved: LmType = UNKNOWN
        if name in SCALAR_NAMES:
            if args:
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
