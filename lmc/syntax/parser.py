"""`.lmp` text -> typed syntax tree (`lmc.syntax`).

Lark parses with positions on (`lark_parser`); its tree becomes frozen syntax nodes with spans and
the comments `lmc fmt` keeps (`to_syntax`); a syntax error names what was expected, in words
(`syntax_errors`).
"""

from __future__ import annotations

from dataclasses import replace

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from lmc.diagnostics import Diagnostic, Diagnostics, ProgramError, Span
from lmc.signatures import SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.lark_parser import lark_parser
from lmc.syntax.syntax_errors import check_nesting, syntax_diagnostic
from lmc.syntax.to_syntax import ToSyntax

# How long a `.lmp` text may be (how deep it may nest: `syntax_errors.MAX_NESTING`).
MAX_SOURCE_CHARS = 2_000_000


def parse(text: str, file: str = "<string>", diagnostics: Diagnostics | None = None) -> ast.Module:
    """Parse `.lmp` source into a syntax tree.

    A syntax error raises `ProgramError` at once. Other errors (an unknown type, a bad escape) go to
    `diagnostics` when given, so the checker can report its own errors beside them; without it,
    they raise.
    """
    # A file saved on Windows ends its lines with CRLF: a line break, as in Python source, and
    # not text. Kept, the CR became part of a long string (an instruction) and of comments, and
    # `lmc fmt` wrote it back as a `\r` escape. Lines and columns are unchanged.
    text = text.replace("\r\n", "\n")
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
    parser = lark_parser()
    try:
        tree = _parse_collecting(parser, text, comments)
    except UnexpectedInput as error:
        raise ProgramError([syntax_diagnostic(error, text, file)], {file: text}) from None
    check_nesting(tree, file, {file: text})
    builder = ToSyntax(file, text, comments)
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
        tree = lark_parser().parse(text, start="sig_text")
    except UnexpectedInput as error:
        diagnostic = syntax_diagnostic(error, text, file, start="sig_text")
        raise ProgramError(
            [replace(diagnostic, span=place(diagnostic.span))], {} if at else {file: text}
        ) from None
    try:
        check_nesting(tree, file, {file: text})
    except ProgramError as error:
        raise ProgramError(
            [replace(d, span=place(d.span)) for d in error.diagnostics], {} if at else {file: text}
        ) from None
    builder = ToSyntax(file, text, [])
    inputs, outputs = builder.transform(tree)
    placed = Diagnostics()
    placed.extend(replace(d, span=place(d.span)) for d in builder.diagnostics.sorted())
    placed.raise_if_any({} if at else {file: text})
    inputs = tuple(replace(f, span=place(f.span)) for f in inputs)
    outputs = tuple(replace(f, span=place(f.span)) for f in outputs)
    return SignatureSpec(name, inputs, outputs, None, at or builder.span_of_text())
