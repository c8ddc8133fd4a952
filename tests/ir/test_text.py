"""The IR's text form: every well-formed graph, compiled ones included, prints as `.lmp` that
parses back to an equal graph, and printing what was read gives the same text again."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import modules

import lmc
from lmc.diagnostics import ProgramError
from lmc.ir.graph import NEAREST_KINDS, Demo, NearestDemos, ProgramGraph, StepParams, rebuild
from lmc.ir.lower import check
from lmc.ir.text import parse_program, print_program, writes_every_type
from lmc.passes.dead_steps import live_nodes
from lmc.passes.dedupe_steps import merge_duplicates
from lmc.passes.fuse_steps import fusable_pairs, fuse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Demo values are JSON's: text with any character (quotes, line breaks, control characters,
# surrogates), whole and decimal numbers of either sign, true, false, null, lists and objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def compiled_graphs(draw: st.DrawFn) -> ProgramGraph:
    """A checked program, then what passes do to one: demos and instructions learned per
    parameter key, duplicates merged, dead nodes removed, a pair of steps fused."""
    module = draw(modules())
    graph = draw(st.sampled_from(list(check(module).graphs.values()) or [None]))
    if graph is None:
        return ProgramGraph("Empty")
    for step in graph.steps():
        fields = [
            f.name for f in (*step.signature.inputs, *step.signature.outputs_for(step.module))
        ]
        demos = draw(
            st.lists(
                st.lists(st.sampled_from(fields), unique=True, min_size=1).flatmap(
                    lambda names: st.tuples(*(st.tuples(st.just(n), json_values) for n in names))
                ),
                max_size=2,
            )
        )
        instruction = draw(st.none() | st.text())
        nearest = None
        inputs = [f.name for f in step.signature.inputs]
        if inputs and draw(st.booleans()):
            pool = draw(
                st.lists(
                    st.tuples(
                        st.tuples(st.sampled_from(inputs), json_values),
                        *(st.tuples(st.just(n), json_values) for n in fields[len(inputs) :]),
                    ),
                    min_size=1,
                    max_size=3,
                )
            )
            k = draw(st.integers(min_value=1, max_value=5))
            kind = draw(st.sampled_from(NEAREST_KINDS))
            nearest = NearestDemos(k, tuple(Demo(d) for d in pool), kind)
        graph.params[step.param_key] = StepParams(
            instruction, tuple(Demo(d) for d in demos), nearest
        )
    if draw(st.booleans()):
        graph, _ = merge_duplicates(graph)
    if draw(st.booleans()):
        graph = rebuild(graph, live_nodes(graph))
    pairs = fusable_pairs(graph)
    if pairs and draw(st.booleans()):
        graph, _ = fuse(graph, *draw(st.sampled_from(pairs)))
    return graph


def _floats_equal(a: Any, b: Any) -> bool:
    """Equality that also tells -0.0 from 0.0 (equal in Python, different to JSON readers)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_floats_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_floats_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(compiled_graphs())
def test_a_compiled_program_prints_and_parses_back_equal(graph: ProgramGraph) -> None:
    if not graph.steps() and not graph.outputs():
        return
    assume(writes_every_type(graph))  # the text form's known gap
    text = print_program(graph, "/project")

    read = parse_program(text, "/project/program.lmp")

    assert read == graph
    assert print_program(read, "/project") == text  # idempotent
    for key, params in graph.params.items():
        assert any(_floats_equal(params.demos, p.demos) for p in read.params.values()), key
        if params.nearest is not None:
            wrote = [d.fields for d in params.nearest.pool]
            pools = [[d.fields for d in p.nearest.pool] for p in read.params.values() if p.nearest]
            assert any(_floats_equal(wrote, pool) for pool in pools), key


def test_a_compiled_program_shows_what_it_learned() -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = program.ir.copy()
    learned.params["search"] = StepParams(
        "Write a search query.",
        (Demo((("question", "Who wrote Hamlet?"), ("query", "Hamlet author"))),),
    )

    text = lmc.Program(learned).to_lmp(EXAMPLES / "rag")

    assert "search = chain_of_thought GenerateQuery(context=context, question=question) {\n" in text
    assert '        instruction """Write a search query."""\n' in text
    assert (
        '            question: "Who wrote Hamlet?"\n            query:    "Hamlet author"\n' in text
    )
    # The loop is unrolled; its second copy calls the first and shares what it learned.
    assert "search_2 = search(context=" in text
    assert 'index wiki = bm25("corpus.jsonl", text="text")' in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'gen = predict S(question=question) { demo { answr: "x" } }',
            "demo field 'answr' is not a field of S; expected 'question' or 'answer'; "
            "did you mean 'answer'?",
        ),
        (
            'gen = predict S(question=question) { hint "x" }',
            "unknown learned parameter 'hint'",
        ),
        (
            "gen = predict S(question=question) { demo { answer: nil } }",
            "expected a value (a string, a number, true, false, null, [...] or {...}), found 'nil'",
        ),
        (
            "gen = predict S(question=question)\n    again = question(question=question)",
            "'question' is not a step; only a step can be called again",
        ),
        (
            'gen = predict S(question=question) { instruction "a" }\n'
            '    gen = predict S(question=gen.answer) { instruction "b" }',
            "'gen' already learned other parameters at line 3",
        ),
        (
            'n: int = "three"\n    gen = predict S(question=question)',
            "type mismatch: 'n' is declared int, found str",
        ),
        (
            'gen = predict S(question=question) { nearest 0 { demo { question: "q" } } }',
            "nearest takes how many demos to show each call, a whole number of at least 1; found 0",
        ),
        (
            'gen = predict S(question=question) { nearest 2.5 { demo { question: "q" } } }',
            "a whole number of at least 1; found 2.5",
        ),
        (
            'gen = predict S(question=question) { nearest 2 by bm52 { demo { question: "q" } } }',
            "unknown way to rank demos 'bm52'; expected 'bm25' or 'embeddings'; "
            "did you mean 'bm25'?",
        ),
        (
            'gen = predict S(question=question) { nearest 2 using bm25 { demo { question: "q" } } }',
            "expected 'by' and how demos are ranked, found 'using'",
        ),
        (
            'gen = predict S(question=question) { nearest 2 { demo { answr: "x" } } }',
            "demo field 'answr' is not a field of S; expected 'question' or 'answer'; "
            "did you mean 'answer'?",
        ),
        (
            'gen = predict S(question=question) { nearest 2 { demo { answer: "x" } } }',
            "a demo of a nearest pool gives none of S's inputs ('question'), so it is never "
            "near anything",
        ),
        (
            "gen = predict S(question=question) { nearest 2 { } }",
            "a nearest pool needs at least one demo",
        ),
        (
            'gen = predict S(question=question) { nearest 2 { example { question: "q" } } }',
            "expected demo { field: value ... } in a nearest pool, found 'example'",
        ),
        (
            'gen = predict S(question=question) { closest 2 { demo { question: "q" } } }',
            "unknown learned parameter 'closest'; expected nearest K { demo ... }",
        ),
        (
            'gen = predict S(question=question) { nearest 1 { demo { question: "a" } }\n'
            '        nearest 1 { demo { question: "b" } } }',
            "a step has one nearest pool",
        ),
    ],
)
def test_mistakes_in_the_new_forms_are_reported_where_they_are(text: str, message: str) -> None:
    source = (
        'signature S = "question -> answer"\n'
        "program P(question: str) -> (answer: str) {\n"
        f"    {text}\n"
        "    return answer = gen.answer\n"
        "}\n"
    )
    with pytest.raises(ProgramError) as raised:
        lmc.loads(source)
    assert message in str(raised.value)


def test_an_empty_list_joined_to_optional_items_reads_back_with_the_same_type() -> None:
    # Found by the property above: `[]` was typed by the result it flowed into (`list[str]`),
    # while the two merged sums printed as one name of their joined type (`list[str?]`), under
    # which the `[]` read back as `list[str?]`. `[] + xs` now holds what xs holds.
    graph = lmc.loads(
        "program format(inputs: list[str?]) -> (inputs: list[str], index_: list[str]) {\n"
        "    return inputs = [] + inputs, index_ = [] + inputs\n"
        "}\n"
    ).ir
    merged, _ = merge_duplicates(graph)
    text = print_program(merged, "/project")

    assert "concat: list[str?] = [] + inputs" in text
    assert parse_program(text, "/project/program.lmp") == merged
