"""The program graph IR: structural equality, loop unrolling, `verify`, `copy` and `topological`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmc.ir.graph import InputNode, OutputNode, ProgramGraph, StepNode
from lmc.ir.lower import load_text
from lmc.ir.text import parse_program, print_program
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import INT, PASSAGES, STR, LmType

SIGNATURES = '''\
signature Draft {
    """Draft an answer from the passages."""
    input  question: str
    input  context:  list[str] "Relevant passages."
    output answer:   str       "A short answer."
}

signature Rephrase = "question -> rephrased"

signature Combine = "left, right -> answer"

index wiki = bm25("corpus.jsonl")
'''

BASE = (
    SIGNATURES
    + """
program P(question: str) -> (answer: str) {
    passages = retrieve wiki(query=question, k=3)
    draft = predict Draft(question=question, context=passages)
    other = predict Rephrase(question=question)
    final = predict Combine(left=draft.answer, right=other.rephrased)
    return answer = final.answer
}
"""
)

RENAMED = (
    SIGNATURES
    + """
# The same program: other step names, another layout, comments, independent steps swapped.
program P(question: str) -> (answer: str) {
    found = retrieve wiki(query=question, k=3)  # three passages
    alt = predict Rephrase(question=question)

    first = predict Draft(
        question=question,
        context=found,
    )
    # merge the two
    out = predict Combine(left=first.answer, right=alt.rephrased)
    return answer = out.answer
}
"""
)

ROOT = Path(__file__).resolve().parents[2]


def graph(text: str, name: str = "P") -> ProgramGraph:
    return load_text(text).graphs[name]


def variant(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


# equality ----------------------------------------------------------------------------------------


def test_step_names_spans_and_comments_do_not_matter() -> None:
    assert graph(BASE) == graph(RENAMED)


def test_retrieve_k_defaults_to_3() -> None:
    assert graph(BASE) == graph(variant("k=3)", ")"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            'output answer:   str       "A short answer."',
            'output answer:   int       "A short answer."',
            id="field-type",
        ),
        pytest.param('"A short answer."', '"A long answer."', id="description"),
        pytest.param("from the passages.", "from memory.", id="instruction"),
        pytest.param(
            "left=draft.answer, right=other.rephrased",
            "left=other.rephrased, right=draft.answer",
            id="wiring",
        ),
        pytest.param("draft = predict", "draft = chain_of_thought", id="module-kind"),
        pytest.param("k=3", "k=4", id="retrieve-k"),
    ],
)
def test_programs_that_differ_in_meaning_are_not_equal(old: str, new: str) -> None:
    assert graph(BASE) != graph(variant(old, new))


def chain(first: str, second: str) -> str:
    return f"""\
signature S = "a -> b"

program P(x: str) -> (y: str) {{
    {first} = predict S(a=x)
    {second} = predict S(a={first}.b)
    return y = {second}.b
}}
"""


def test_steps_bound_to_one_name_share_parameters() -> None:
    shared = graph(chain("step", "step"))
    assert len(shared.steps()) == 2
    assert len(shared.params) == 1


def test_parameter_sharing_is_part_of_equality() -> None:
    shared, separate = graph(chain("step", "step")), graph(chain("first", "second"))
    assert len(separate.params) == 2
    assert shared != separate


def test_loop_copies_share_one_param_key() -> None:
    looped = graph(
        """\
signature S = "a -> b"

program P(x: str) -> (y: str) {
    value = x
    for i in range(2) {
        step = predict S(a=value)
        value = step.b
    }
    return y = value
}
"""
    )
    steps = looped.steps()
    assert len(steps) == 2
    assert steps[0].param_key == steps[1].param_key
    assert list(looped.params) == [steps[0].param_key]
    assert looped == graph(chain("step", "step"))


def test_a_step_keeps_its_name_when_printed_beside_loop_copies_of_another() -> None:
    # The loop's second copy of `step` is printed under a made-up name, which must not be the
    # user's `step_2`: `program.step("step_2")` and a saved module's parameters go by name.
    looped = graph(
        """\
signature S = "a -> b"
signature T = "b -> c"

program P(x: str) -> (y: str) {
    value = x
    for i in range(2) {
        step = predict S(a=value)
        value = step.b
    }
    step_2 = predict T(b=value)
    return y = step_2.c
}
"""
    )

    again = parse_program(print_program(looped), "again.lmp")

    assert again == looped
    named = again.node("step_2")
    assert isinstance(named, StepNode)
    assert named.signature.name == "T"


# verify ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(BASE, id="base"),
        pytest.param(chain("step", "step"), id="shared"),
        pytest.param((ROOT / "examples" / "rag" / "program.lmp").read_text("utf-8"), id="example"),
    ],
)
def test_lowered_graphs_verify(text: str) -> None:
    for lowered in load_text(text).graphs.values():
        assert lowered.verify() == []


SIGNATURE = SignatureSpec("S", (FieldSpec("a", INT),), (FieldSpec("b", STR),))


def hand_built(input_type: LmType, *, wire_input: bool = True) -> ProgramGraph:
    built = ProgramGraph("P")
    source = built.add(InputNode("x", input_type))
    step = built.add(StepNode("s", SIGNATURE, "predict", "s"))
    result = built.add(OutputNode("y", STR))
    if wire_input:
        built.connect(source, "value", step, "a")
    built.connect(step, "b", result, "value")
    return built


def test_verify_accepts_a_well_formed_hand_built_graph() -> None:
    assert hand_built(INT).verify() == []


def test_verify_reports_an_input_nothing_flows_into() -> None:
    problems = hand_built(INT, wire_input=False).verify()
    assert [p.message for p in problems] == ["s: nothing flows into 'a'"]


def test_verify_reports_a_wire_of_the_wrong_type() -> None:
    problems = hand_built(PASSAGES).verify()
    assert len(problems) == 1
    assert problems[0].message.startswith("type mismatch: expected int for 'a', found list[str]")


def test_verify_reports_steps_sharing_a_key_with_different_signatures() -> None:
    built = hand_built(INT)
    other = SignatureSpec("T", (FieldSpec("a", INT),), (FieldSpec("c", STR),))
    built.add(StepNode("t", other, "predict", "s"))
    built.connect("in:x", "value", "t", "a")
    assert [p.message for p in built.verify()] == ["t shares parameters with a different step"]


# copy and order ----------------------------------------------------------------------------------


def test_copy_is_equal_and_independent() -> None:
    original = graph(BASE)
    nodes_before = len(original.nx)
    copied = original.copy()
    assert copied == original
    copied.add(StepNode("extra", SIGNATURE, "predict", "extra"))
    assert copied != original
    assert len(original.nx) == nodes_before
    assert "extra" not in original.params
    assert original == graph(BASE)


def test_topological_puts_each_step_after_what_it_reads() -> None:
    """The steps are written in the reverse of the order they run in."""
    backwards = graph(
        SIGNATURES
        + """
program P(question: str) -> (answer: str) {
    final = predict Combine(left=draft.answer, right=other.rephrased)
    other = predict Rephrase(question=draft.answer)
    draft = predict Draft(question=question, context=retrieve wiki(query=question))
    return answer = final.answer
}
"""
    )
    order = [node.id for node in backwards.topological()]
    assert len(order) == len(backwards.nx)
    position = {node_id: i for i, node_id in enumerate(order)}
    for source, target, _ in backwards.edges():
        assert position[source] < position[target], (source, target)
    assert [s.name for s in backwards.steps()] == ["draft", "other", "final"]


def test_every_node_kind_is_evaluated_drawn_and_written() -> None:
    # A new kind of node must say how it runs, how `lmc show` draws it and how the text form
    # writes it; a missing entry would otherwise surface as a KeyError on some user's program.
    from lmc.ir import render, text
    from lmc.ir.graph import NODE_KINDS, Node
    from lmc.runtime import executor

    assert all(issubclass(kind, Node) for kind in NODE_KINDS)
    for table in (executor.EVALUATORS, render._ATTRIBUTES, text._STATEMENTS):
        assert set(table) == set(NODE_KINDS)


def test_every_kind_of_statement_and_expression_is_lowered() -> None:
    from typing import get_args

    from lmc.ir import lower_expressions, lower_program
    from lmc.syntax import tree as ast

    assert set(lower_program._STATEMENTS) == set(get_args(ast.Statement))
    assert set(lower_expressions._EXPRESSIONS) == set(get_args(ast.Expr))
