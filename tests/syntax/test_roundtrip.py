"""The printer and the parser agree: `lmc fmt` never changes what a file means.

A user runs `lmc fmt` on a file and keeps working on the result, so formatting must give back the
same syntax tree, be stable when run twice, compile to the same program graphs, and keep every
comment the user wrote.
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import cache
from importlib import resources

from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark
from strategies import (
    any_text,
    commented_sources,
    docstring_text,
    modules,
    single_signature_modules,
)

from lmc.ir.lower import check
from lmc.syntax import tree as ast
from lmc.syntax.parser import parse
from lmc.syntax.printer import print_module

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


def strict_form(node: object) -> object:
    """A node as nested tuples of the fields equality compares, with each leaf's Python type.

    Node equality treats `true`, `1` and `1.0` as the same constant because `True == 1 == 1.0`
    in Python; this form tells them apart. Spans, comments and other fields left out of
    equality stay out of it.
    """
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            tuple(
                (f.name, strict_form(getattr(node, f.name)))
                for f in dataclasses.fields(node)
                if f.compare
            ),
        )
    if isinstance(node, tuple):
        return tuple(strict_form(item) for item in node)
    return (type(node).__name__, node)


def reformat(text: str) -> str:
    return print_module(parse(text, "formatted.lmp"))


@cache
def _grammar_lexer() -> Lark:
    grammar = resources.files("lmc.grammar").joinpath("lmp.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", start=["start", "sig_text"])


def comments_in(text: str) -> list[str]:
    """The comments of a source text in order, as the grammar's lexer finds them."""
    tokens = _grammar_lexer().lex(text, dont_ignore=True)
    return [str(token).rstrip() for token in tokens if token.type == "COMMENT"]


@PROPERTY_SETTINGS
@given(modules())
def test_parsing_printed_module_gives_back_the_module(module: ast.Module) -> None:
    """`parse(print_module(m)) == m`: formatting loses and invents nothing a program says,
    down to whether a constant is a bool, a whole number or a decimal."""
    printed = print_module(module)
    reparsed = parse(printed)
    assert reparsed == module, printed
    assert strict_form(reparsed) == strict_form(module), printed


@PROPERTY_SETTINGS
@given(modules())
def test_printing_is_idempotent(module: ast.Module) -> None:
    """Formatting an already formatted file changes nothing, so `lmc fmt` in an editor hook or a
    CI check never flip-flops between two layouts."""
    printed = print_module(module)
    assert print_module(parse(printed)) == printed


@PROPERTY_SETTINGS
@given(modules())
def test_printed_module_lowers_to_the_same_graphs(module: ast.Module) -> None:
    """A formatted file compiles to the same program graphs as the original, so formatting never
    changes which steps run, how they are wired or which learnable parameters they share."""
    original = check(module)
    printed = print_module(module)
    reparsed = check(parse(printed), printed)
    assert reparsed.graphs.keys() == original.graphs.keys()
    for name, graph in original.graphs.items():
        assert reparsed.graphs[name] == graph, f"program {name} differs after printing:\n{printed}"


@PROPERTY_SETTINGS
@given(single_signature_modules(docstring_text))
def test_dedented_instruction_prints_triple_quoted_and_round_trips(module: ast.Module) -> None:
    """An instruction that reads the same once dedented is written as a `\"\"\"` block, the form
    a user writes by hand, and reads back as the same text."""
    printed = print_module(module)
    assert '"""' in printed
    assert parse(printed) == module, printed


@PROPERTY_SETTINGS
@given(single_signature_modules(any_text))
def test_any_instruction_text_round_trips(module: ast.Module) -> None:
    """Instructions with leading spaces, trailing newlines, quotes or backslashes, which a
    `\"\"\"` block would alter, still read back exactly as written."""
    printed = print_module(module)
    assert parse(printed) == module, printed


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))))
def test_dedent_oracle_matches_triple_quote_reading(line: str) -> None:
    """A one-line triple-quoted instruction reads back as `inspect.cleandoc` of its body, which is
    what the strategies assume when they choose triple-quotable text."""
    if '"""' in line or line.endswith('"'):
        return
    module = parse(f'signature S {{\n    """{line}"""\n    input a: str\n    output b: str\n}}\n')
    declaration = module.declarations[0]
    assert isinstance(declaration, ast.SignatureDecl)
    assert declaration.signature.instruction == inspect.cleandoc(line)


# Comments ------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(commented_sources())
def test_formatting_keeps_every_comment_in_order(module_and_source: tuple[ast.Module, str]) -> None:
    """Comments anywhere in a file survive formatting in their order, do not change the syntax
    tree, and a formatted file with comments formats to itself: a user's notes are never lost
    or shuffled by `lmc fmt`."""
    module, source = module_and_source
    parsed = parse(source)
    assert parsed == module, source
    formatted = print_module(parsed)
    assert comments_in(formatted) == comments_in(source), formatted
    assert print_module(parse(formatted)) == formatted, formatted


COMMENTED_SOURCE = """\
# Answers questions from a wiki.
signature Answer {
    \"\"\"Answer in a few words.\"\"\"
    input question: str   # what the user asked
    output answer: str
}

index wiki = bm25("wiki.jsonl")

program RAG(question: str) -> (answer: str) {
    # the first hop
    context = retrieve wiki(query=question, k=2)  # top two passages
    gen = predict Answer(question=question)
    for hop in range(2) {
        # each hop refines the answer
        gen = predict Answer(question=gen.answer)
    }
    return answer = gen.answer
}

# metric chosen for the demo
metric exact_match(answer)
# end of file
"""


def _line_with(text: str, fragment: str) -> tuple[int, str]:
    lines = text.splitlines()
    matches = [(i, line) for i, line in enumerate(lines) if fragment in line]
    assert len(matches) == 1, f"{fragment!r} should appear on exactly one line of:\n{text}"
    return matches[0]


def test_leading_comment_stays_above_its_declaration() -> None:
    """A comment describing a declaration stays on the line above it after formatting."""
    formatted = reformat(COMMENTED_SOURCE)
    number, _ = _line_with(formatted, "# Answers questions from a wiki.")
    assert formatted.splitlines()[number + 1].startswith("signature Answer")


def test_trailing_comment_stays_on_its_statement_line() -> None:
    """A comment at the end of a statement stays on that statement's line."""
    formatted = reformat(COMMENTED_SOURCE)
    _, line = _line_with(formatted, "# top two passages")
    assert line.strip().startswith("context = retrieve wiki(query=question, k=2)")
    _, field_line = _line_with(formatted, "# what the user asked")
    assert field_line.strip().startswith("input")


def test_comment_inside_a_loop_stays_inside_it() -> None:
    """A comment in a loop body is printed inside the loop, indented with the body, above the
    statement it describes."""
    formatted = reformat(COMMENTED_SOURCE)
    number, line = _line_with(formatted, "# each hop refines the answer")
    lines = formatted.splitlines()
    loop_start, _ = _line_with(formatted, "for hop in range(2) {")
    assert loop_start < number
    assert line == "        # each hop refines the answer"
    assert lines[number + 1].strip() == "gen = predict Answer(question=gen.answer)"
    assert lines[number + 2] == "    }"


def test_comments_at_end_of_file_are_kept_last() -> None:
    """Comments after the last declaration are kept at the end of the file."""
    formatted = reformat(COMMENTED_SOURCE)
    assert formatted.endswith("# end of file\n")
    number, _ = _line_with(formatted, "# metric chosen for the demo")
    assert formatted.splitlines()[number + 1] == "metric exact_match(answer)"


def test_formatting_keeps_every_comment() -> None:
    """No comment is dropped or duplicated by formatting."""
    formatted = reformat(COMMENTED_SOURCE)
    original_comments = [
        line[line.index("#") :] for line in COMMENTED_SOURCE.splitlines() if "#" in line
    ]
    formatted_comments = [line[line.index("#") :] for line in formatted.splitlines() if "#" in line]
    assert formatted_comments == original_comments


def test_formatted_file_with_comments_is_a_fixed_point() -> None:
    """Formatting a formatted file, comments and all, gives back the same text."""
    formatted = reformat(COMMENTED_SOURCE)
    assert reformat(formatted) == formatted
    assert parse(formatted) == parse(COMMENTED_SOURCE)


CANONICAL_SOURCE = """\
# Multi-hop question answering.
signature Summarize = "document -> summary"

signature GenerateAnswer {
    \"\"\"
    Answer the question using only the retrieved context.
    Keep it short.
    \"\"\"
    input  context:  list[str] "Relevant passages."
    input  question: str
    output answer:   str       "A short factual answer, a few words."
}

index wiki = bm25("corpus.jsonl", text="body")

program MultiHop(question: str, hops: int?) -> (answer: str, notes: list[str]) {
    passages = retrieve wiki(query=question, k=3)  # first hop
    for i in range(2) {
        # widen the context
        step = chain_of_thought "context: list[str], question -> query"(context=passages, question=question)
        passages = passages + retrieve wiki(query=step.query)
    }
    gen = chain_of_thought GenerateAnswer(context=passages, question=question)
    return answer = gen.answer, notes = [gen.reasoning, "fixed"] + []
}

metric exact_match(answer)
"""


def test_canonical_file_is_a_fixed_point() -> None:
    """A file already in the canonical layout is left byte-for-byte unchanged by `lmc fmt`."""
    check(parse(CANONICAL_SOURCE), CANONICAL_SOURCE)
    assert reformat(CANONICAL_SOURCE) == CANONICAL_SOURCE


def test_literal_choice_with_a_tab_round_trips() -> None:
    """A tab typed inside a literal choice is legal source and must survive formatting."""
    source = 'program P(a: literal["x\ty"]) -> (b: str) {\n    return b = a\n}\n'
    assert parse(reformat(source)) == parse(source)


def test_every_kind_of_declaration_statement_and_expression_is_printed() -> None:
    # A new kind in the syntax tree must say how `lmc fmt` writes it; a missing entry would
    # otherwise surface as a KeyError on some user's file.
    from typing import get_args

    from lmc.syntax import printer

    assert set(printer._DECLARATIONS) == set(get_args(ast.Declaration))
    assert set(printer._STATEMENTS) == set(get_args(ast.Statement))
    assert set(printer._EXPRESSIONS) == set(get_args(ast.Expr))
