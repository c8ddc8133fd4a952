"""Syntax errors in words, and the nesting limit every stage after the parser relies on.

A Lark error names terminals (`RBRACE`, `$END`); a user should read what was expected as they
would write it (`'}'`, `the end of the file`), and where a block was left open.
"""

from __future__ import annotations

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from lmc.diagnostics import Diagnostic, ProgramError, Span, source_lines
from lmc.syntax.lark_parser import KEYWORDS, lark_parser

DECLARATION_KEYWORDS = frozenset({"SIGNATURE", "FUNCTION", "INDEX", "PROGRAM", "METRIC"})

# How a terminal is named to the user when it is expected and missing.
TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": 'a """text""" string',
    "NUMBER": "a number",
    "$END": "the end of the file",
}

# How deep a `.lmp` text may nest: the parser's transformer and every stage after it walk the
# syntax tree recursively (its length is limited in `parser`). A level is one of these rules: a
# type inside `list[...]`, a list, a `retrieve` in an argument, a `for` loop inside another, a demo
# value inside another, and each `+` of a chain (`a + b + c` is two).
MAX_NESTING = 100
_NESTING_RULES = frozenset(
    {"type_args", "list_expr", "retrieve", "for_loop", "concat", "v_list", "v_object"}
)


def check_nesting(tree: Tree[Token], file: str, sources: dict[str, str]) -> None:
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
    pattern = lark_parser().get_terminal(name).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _expected_words(expected: set[str]) -> str:
    words = sorted({_describe_terminal(t) for t in expected}, key=lambda w: (w[0] != "'", w))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _expected_before(prefix: str, start: str) -> set[str]:
    """The tokens the grammar accepts after `prefix` (empty if the prefix itself is wrong)."""
    try:
        interactive = lark_parser().parse_interactive(prefix, start=start)
        interactive.exhaust_lexer()
        accepted: set[str] = interactive.accepts()  # type: ignore[no-untyped-call]
        return {t for t in accepted if t != "COMMENT"}
    except UnexpectedInput:
        return set()


def _unclosed_brace(text: str, before: Token) -> str | None:
    """The header of the innermost `{` still open where `before` stands, e.g. `signature QA`."""
    opened: list[int] = []
    try:
        for token in lark_parser().lex(text):
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
    header = source_lines(text)[opened[-1] - 1].split("{")[0].strip()
    return f"`{header}` from line {opened[-1]}"


def syntax_diagnostic(
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
        lines = source_lines(text) or [""]
        end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic(
            end, f"unexpected end of file; expected {_expected_words(set(error.expected))}"
        )
    assert isinstance(error, UnexpectedToken)
    token = error.token
    expected = set(error.accepts or error.expected)
    if token.type == "$END":
        lines = source_lines(text) or [""]
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
