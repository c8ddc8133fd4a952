"""The limits on what a `.lmp` text may ask for: how deep it nests and how long it is.

Every stage after the parser walks the syntax tree recursively; a text nested a few hundred levels
deep used to end in a RecursionError traceback. Up to `MAX_NESTING` levels everything works (parse,
format, check, print, save as an artifact and load again); one more is an error at the place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import lmc
from lmc.diagnostics import ProgramError
from lmc.ir.lower_program import MAX_NODES
from lmc.syntax.parser import MAX_SOURCE_CHARS, parse
from lmc.syntax.printer import print_module
from lmc.syntax.syntax_errors import MAX_NESTING


def nested_type(n: int) -> str:
    deep = "list[" * n + "str" + "]" * n
    return (
        f"signature S {{\n    input  a: {deep}\n    output b: str\n}}\n\n"
        f"program P(x: {deep}) -> (y: str) {{\n    s = predict S(a=x)\n    return y = s.b\n}}\n"
    )


def nested_list(n: int) -> str:
    return (
        'signature S = "a: list[str] -> b"\n\n'
        "program P(x: str) -> (y: str) {\n"
        f"    z = {'[' * n}x{']' * n}\n    s = predict S(a=z)\n    return y = s.b\n}}\n"
    )


def plus_chain(n: int) -> str:
    return (
        'signature S = "a: list[str] -> b"\n\n'
        "program P(x: list[str]) -> (y: str) {\n"
        f"    z = x{' + x' * n}\n    s = predict S(a=z)\n    return y = s.b\n}}\n"
    )


def nested_loops(n: int) -> str:
    opened = "".join("    " + "for i in range(1) {\n" for _ in range(n))
    return (
        'signature S = "a -> b"\n\n'
        f"program P(x: str) -> (y: str) {{\n{opened}"
        "        s = predict S(a=x)\n        x = s.b\n" + "    }\n" * n + "    return y = x\n}\n"
    )


def nested_retrieve(n: int) -> str:
    return (
        'signature S = "a: list[str] -> b"\n\nindex w = bm25("corpus.jsonl")\n\n'
        "program P(x: str) -> (y: str) {\n"
        f"    z = {'retrieve w(query=' * n}x{')' * n}\n    s = predict S(a=z)\n"
        "    return y = s.b\n}\n"
    )


def nested_demo_value(n: int) -> str:
    value = "[" * n + '"x"' + "]" * n
    return (
        'signature S = "a -> b"\n\n'
        "program P(x: str) -> (y: str) {\n"
        f'    s = predict S(a=x) {{\n        demo {{ a: "q", b: {value} }}\n    }}\n'
        "    return y = s.b\n}\n"
    )


def nested_signature_text(n: int) -> str:
    return f'signature S = "a: {"list[" * n}str{"]" * n} -> b"\n'


NESTINGS: dict[str, Callable[[int], str]] = {
    "type": nested_type,
    "list": nested_list,
    "plus chain": plus_chain,
    "loops": nested_loops,
    "retrieve": nested_retrieve,
    "demo value": nested_demo_value,
    "signature text": nested_signature_text,
}

MESSAGE = (
    f"nested more than {MAX_NESTING} levels deep; lmc reads at most {MAX_NESTING} levels of "
    "types, lists, loops, retrieves and '+'"
)


@pytest.mark.parametrize("make", NESTINGS.values(), ids=list(NESTINGS))
def test_a_text_nested_as_deep_as_the_limit_goes_through_every_stage(
    make: Callable[[int], str], tmp_path: Path
) -> None:
    text = make(MAX_NESTING)
    assert print_module(parse(print_module(parse(text)))) == print_module(parse(text))
    if "program" not in text:
        return
    program = lmc.loads(text)
    assert lmc.loads(program.to_lmp()) == program
    program.save(tmp_path / "p.json")
    assert lmc.load(tmp_path / "p.json") == program


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5_000])
@pytest.mark.parametrize("make", NESTINGS.values(), ids=list(NESTINGS))
def test_a_text_nested_deeper_is_an_error_at_the_place(
    make: Callable[[int], str], depth: int
) -> None:
    text = make(depth)

    with pytest.raises(ProgramError) as caught:
        lmc.loads(text, file="deep.lmp")

    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message == MESSAGE
    span = diagnostic.span
    assert span.file == "deep.lmp"
    # The place is inside the nested construct, on its line.
    line = text.splitlines()[span.line - 1]
    assert any(mark in line for mark in ("list[", "[", "+", "for", "retrieve"))
    assert 1 <= span.column <= len(line)


def test_a_plus_chain_is_reported_where_it_starts() -> None:
    with pytest.raises(ProgramError) as caught:
        lmc.loads(plus_chain(MAX_NESTING + 1), file="deep.lmp")

    assert str(caught.value.diagnostics[0].span) == "deep.lmp:4:9"


def test_a_text_longer_than_the_limit_is_refused_before_parsing() -> None:
    text = "# " + "x" * MAX_SOURCE_CHARS + "\n"

    with pytest.raises(ProgramError) as caught:
        parse(text, "long.lmp")

    assert str(caught.value) == (
        f"long.lmp:1:1: error: the file is {len(text):,} characters long; lmc reads .lmp text "
        f"of up to {MAX_SOURCE_CHARS:,} characters"
    )


# unrolled size -----------------------------------------------------------------------------------


def loops(*counts: int, steps: int = 1) -> str:
    """Loops nested as `counts` says, around `steps` chained steps."""
    indent = "    "
    body = "".join(
        f"{indent * (len(counts) + 1)}s{i} = predict S(a=x)\n{indent * (len(counts) + 1)}x = s{i}.b\n"
        for i in range(steps)
    )
    opened = "".join(f"{indent * (d + 1)}for i{d} in range({n}) {{\n" for d, n in enumerate(counts))
    closed = "".join(f"{indent * (d + 1)}}}\n" for d in reversed(range(len(counts))))
    return (
        'signature S = "a -> b"\n\n'
        f"program P(x: str) -> (y: str) {{\n{opened}{body}{closed}    return y = x\n}}\n"
    )


def test_loops_that_unroll_past_the_limit_are_one_error_at_the_outer_loop_and_stop_early() -> None:
    started = time.perf_counter()
    with pytest.raises(ProgramError) as caught:
        lmc.loads(loops(64, 64, 64), file="loops.lmp")

    assert time.perf_counter() - started < 10  # it took minutes, unrolling 262,144 copies
    (diagnostic,) = caught.value.diagnostics
    assert str(diagnostic.span) == "loops.lmp:4:5"
    assert diagnostic.message == (
        f"this loop unrolls to more than {MAX_NODES:,} nodes (64 x 64 x 64 copies of the loop "
        f"body); lmc checks programs of up to {MAX_NODES:,} nodes unrolled: use fewer iterations"
    )


def test_a_program_just_under_the_limit_unrolls() -> None:
    program = lmc.loads(loops(64, 64, steps=2))

    assert MAX_NODES - 2_000 < len(program.ir) <= MAX_NODES


def test_a_program_just_over_the_limit_does_not() -> None:
    with pytest.raises(ProgramError, match=f"more than {MAX_NODES:,} nodes"):
        lmc.loads(loops(64, 64, steps=3))
