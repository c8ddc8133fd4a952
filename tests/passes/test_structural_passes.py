"""The structural passes, `dead-steps`, `dedupe-steps` and `fuse-steps`, beyond their golden files.

`test_golden.py` compares each pass's output on the cases in `tests/passes/golden/<pass>/` with
the expected files; the tests here assert what those files show directly, so an update of the
golden files cannot accept a regression unnoticed, and cover programs written inline. No test
runs a real LM: `FakeLM` answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from golden_cases import GOLDEN, load_case

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.ir.graph import (
    ProgramGraph,
    StepParams,
)
from lmc.passes.base import CompileContext, Dataset
from lmc.passes.dead_steps import DeadStepsPass
from lmc.passes.dedupe_steps import DedupeStepsPass
from lmc.passes.fuse_steps import FuseStepsPass, fusable_pairs
from lmc.passes.manager import run_pipeline
from lmc.passes.pipeline import parse_pipeline
from lmc.runtime.data import coerce
from lmc.runtime.metrics import builtin

# Data and a fake LM for programs written inline (a golden case has its own files) ----------------

ANSWERS = {
    "What is the capital of France?": "Paris",
    "Who wrote Hamlet?": "Shakespeare",
    "How many legs has a spider?": "eight",
}


def _request_fields(request: LMRequest) -> tuple[dict[str, str], list[str], str]:
    """The input values, output names and system prompt of a `json` backend request."""
    system = request.messages[0].content
    last = request.messages[-1].content
    inputs = {}
    for chunk in last.split("\n\n"):
        name, newline, value = chunk.partition(":\n")
        if newline and re.fullmatch(r"\w+", name):
            inputs[name] = value
    assert request.json_schema is not None
    outputs = list(json.loads(request.json_schema)["properties"])
    return inputs, outputs, system


def answering(*, wrong_when_fused: bool = False) -> Callable[[LMRequest], str]:
    """A fake LM that knows the answers: every value it writes names the question it came from,
    so any step (two steps, or both fused) can work out the right answer from its inputs."""

    def reply(request: LMRequest) -> str:
        inputs, outputs, system = _request_fields(request)
        seen = " ".join(inputs.values())
        # A default, not StopIteration: raised in a worker thread, that would hang the run.
        question = next((q for q, a in ANSWERS.items() if q in seen or a in seen), "")
        fused = "\n\nThen: " in system
        values: dict[str, str] = {}
        for name in outputs:
            if name == "reasoning":
                values[name] = "Thinking it through."
            elif name == "answer":
                wrong = fused and wrong_when_fused
                values[name] = "no idea" if wrong else ANSWERS.get(question, "no idea")
            else:
                values[name] = f"{name} for {question}"
        return json.dumps(values)

    return reply


def dataset(program: lmc.Program, name: str) -> Dataset:
    examples = tuple({"question": q, "answer": a} for q, a in ANSWERS.items())
    # Inputs other than the question (a style, an unused one) get a plain value.
    plain = {f.name: "plain" for f in program.inputs}
    inputs = tuple(
        coerce(program.inputs, {**plain, **record}, f"{name}: record {i}")
        for i, record in enumerate(examples, 1)
    )
    text = "\n".join(json.dumps(r, sort_keys=True) for r in examples)
    return Dataset(name, examples, inputs, hashlib.sha256(text.encode()).hexdigest())


def compile_context(
    program: lmc.Program, lm: FakeLM, said: list[str] | None = None
) -> CompileContext:
    run = lmc.context(lm, cache=False)
    return CompileContext(
        run=run,
        teacher=run,
        train=dataset(program, "train"),
        dev=dataset(program, "dev"),
        metric=builtin("exact_match", "answer"),
        say=said.append if said is not None else (lambda message: None),
    )


# What the golden files show, asserted directly -----------------------------------------------------


def _apply(pass_name: str, case: str, lm: FakeLM | None = None) -> tuple[ProgramGraph, list[str]]:
    """The pass on a golden case's program, data and fake LM (or `lm`), outside the pass
    manager: `lm.requests` are all the pass asked."""
    loaded = load_case(GOLDEN / pass_name / f"{case}.lmp", lm)
    said: list[str] = []
    context = dataclasses.replace(loaded.context, say=said.append)
    return loaded.a_pass.apply(loaded.program.ir, context), said


def _steps(graph: ProgramGraph) -> list[str]:
    return [s.id for s in graph.steps()]


def test_dead_steps_removes_the_unread_step_and_its_parameters() -> None:
    result, _ = _apply("dead-steps", "dead_step_removed")
    assert _steps(result) == ["gen"]
    assert set(result.params) == {"gen"}


def test_dead_steps_removes_a_dead_chain_and_its_index_but_keeps_inputs() -> None:
    result, said = _apply("dead-steps", "dead_chain_removed")
    assert _steps(result) == ["gen"]
    assert {n.id for n in result.nodes()} == {"in:question", "in:unused", "gen", "out:answer"}
    assert result.indexes == {}
    assert said == [
        "dead-steps: removed const$1, list$3, query, found$2, concat$4, summary, saving 2 LM calls per run"
    ]


def test_dead_steps_keeps_parameters_a_live_copy_shares() -> None:
    result, _ = _apply("dead-steps", "dead_loop_copy_removed")
    assert _steps(result) == ["gen@2"]
    assert set(result.params) == {"gen"}


def test_dead_steps_without_dead_nodes_gives_an_equal_new_graph() -> None:
    loaded = load_case(GOLDEN / "dead-steps" / "nothing_dead.lmp")
    given = loaded.program.ir
    result = loaded.a_pass.apply(given, loaded.context)
    assert result is not given  # a pass never hands back (or changes) the graph it was given
    assert result == given


def test_dedupe_merges_to_a_fixpoint() -> None:
    result, said = _apply("dedupe-steps", "identical_steps_merged")
    assert _steps(result) == ["a", "x", "pick"]
    assert {(w.source_field, w.target_field) for _, w in result.incoming("pick")} == {
        ("answer", "first"),
        ("answer", "second"),
    }
    assert {source for source, _ in result.incoming("pick")} == {"x"}
    assert set(result.params) == {"a", "pick", "x"}
    assert said[-1] == "dedupe-steps: 2 nodes merged, saving 2 LM calls per run"


@pytest.mark.parametrize("case", ["different_inputs_not_merged", "different_params_not_merged"])
def test_dedupe_keeps_steps_that_differ(case: str) -> None:
    program = lmc.load(GOLDEN / "dedupe-steps" / f"{case}.lmp")
    result, _ = _apply("dedupe-steps", case)
    assert result == program.ir


def test_dedupe_merges_steps_with_equal_parameters_under_different_keys() -> None:
    path = GOLDEN / "dedupe-steps" / "different_params_not_merged.lmp"
    program = lmc.load(path)
    program.ir.params["a"] = program.ir.params["b"] = StepParams(instruction="Same.")
    result = DedupeStepsPass().apply(program.ir, compile_context(program, FakeLM(())))
    assert _steps(result) == ["a", "pick"]
    assert result.params["a"] == StepParams(instruction="Same.")


def test_dedupe_merges_constants_retrieves_lists_and_concats() -> None:
    result, _ = _apply("dedupe-steps", "retrieve_duplicates_merged")
    kinds = [type(n).__name__ for n in result.topological()]
    assert kinds.count("ConstNode") == 1
    assert kinds.count("RetrieveNode") == 2  # k=2 once, and k=5
    assert kinds.count("ListNode") == 1
    assert kinds.count("ConcatNode") == 1


def test_fuse_keeps_a_fusion_that_scores_as_well() -> None:
    lm = FakeLM(answering())
    result, said = _apply("fuse-steps", "two_step_chain_kept", lm)
    [fused] = result.steps()
    assert fused.id == "find_then_answer"
    assert [f.name for f in fused.signature.inputs] == ["question"]
    assert [f.name for f in fused.signature.outputs] == ["answer"]
    assert said == [
        "fused find and answer: saves 1 LM call per run",
        "fuse-steps: 1 fusions kept, saving 1 LM calls per run",
    ]
    # The baseline (2 calls an example) and the fused candidate (1): 3 examples each.
    assert len(lm.requests) == 3 * 2 + 3 * 1


def test_fuse_rejects_a_fusion_that_scores_lower_unless_tolerated() -> None:
    result, said = _apply("fuse-steps", "fused_scores_lower_rejected")
    assert _steps(result) == ["find", "answer"]
    assert said[-1] == "fuse-steps: 0 fusions kept, saving 0 LM calls per run"
    path = GOLDEN / "fuse-steps" / "fused_scores_lower_rejected.lmp"
    program = lmc.load(path)
    context = compile_context(program, FakeLM(answering(wrong_when_fused=True)))
    tolerant = FuseStepsPass(tolerance=1.0).apply(program.ir, context)
    assert _steps(tolerant) == ["find_then_answer"]


def test_fuse_fuses_a_chain_and_keeps_outputs_read_elsewhere() -> None:
    result, _ = _apply("fuse-steps", "chain_of_three_fused")
    [fused] = result.steps()
    assert fused.module == "chain_of_thought"
    assert [f.name for f in fused.signature.outputs] == ["topic", "answer"]
    assert {(w.source_field, t) for t, w in result.outgoing(fused.id)} == {
        ("answer", "out:answer"),
        ("topic", "out:topic"),
    }
    assert set(result.params) == {fused.param_key}


def test_fuse_without_fusable_pairs_makes_no_call() -> None:
    path = GOLDEN / "fuse-steps" / "not_fusable_untouched.lmp"
    program = lmc.load(path)
    lm = FakeLM(answering())
    context = compile_context(program, lm)
    assert fusable_pairs(program.ir) == []
    assert FuseStepsPass().projected_calls(program.ir, context) == 0
    result = FuseStepsPass().apply(program.ir, context)
    assert result == program.ir
    assert lm.requests == []


def test_fuse_projects_one_dev_run_per_pair_and_the_baseline() -> None:
    program = lmc.load(GOLDEN / "fuse-steps" / "chain_of_three_fused.lmp")
    context = compile_context(program, FakeLM(answering()))
    assert fusable_pairs(program.ir) == [("find", "draft"), ("draft", "finish")]
    assert FuseStepsPass().projected_calls(program.ir, context) == (2 + 1) * 3 * 3


def test_fused_clashing_names_are_renamed() -> None:
    program = lmc.loads(
        """
signature Guess = "question, style -> answer"
signature Check = "draft, question, style -> answer"

program Clash(question: str, style: str, other: str) -> (answer: str, first: str) {
    guess = predict Guess(question=question, style=style)
    check = predict Check(draft=guess.answer, question=question, style=other)
    return answer = check.answer, first = guess.answer
}
"""
    )
    context = compile_context(program, FakeLM(answering()))
    result = FuseStepsPass(tolerance=1.0).apply(program.ir, context)
    assert result.verify() == []
    [fused] = result.steps()
    # `question` is one value, asked for once; `style` is two values, so two fields.
    assert [f.name for f in fused.signature.inputs] == ["question", "style", "style_2"]
    assert [f.name for f in fused.signature.outputs] == ["answer_2", "answer"]
    wired = {(w.target_field, s) for s, w in result.incoming(fused.id)}
    assert wired == {("question", "in:question"), ("style", "in:style"), ("style_2", "in:other")}
    assert {(w.source_field, t) for t, w in result.outgoing(fused.id)} == {
        ("answer", "out:answer"),
        ("answer_2", "out:first"),
    }


def test_the_passes_are_registered_with_their_options() -> None:
    dead, dedupe, fuse = parse_pipeline("dead-steps,dedupe-steps,fuse-steps{tolerance=0.05}")
    assert isinstance(dead, DeadStepsPass)
    assert isinstance(dedupe, DedupeStepsPass)
    assert fuse == FuseStepsPass(tolerance=0.05)


def _runs(graph: ProgramGraph, **inputs: Any) -> Any:
    return lmc.Program(graph).run(inputs, lmc.context(FakeLM(answering()), cache=False))


def test_structural_passes_keep_what_the_program_computes() -> None:
    program = lmc.load(GOLDEN / "fuse-steps" / "chain_of_three_fused.lmp")
    context = compile_context(program, FakeLM(answering()))
    graph = program.ir
    for a_pass in (DeadStepsPass(), DedupeStepsPass(), FuseStepsPass()):
        graph = a_pass.apply(graph, context)
    question = "Who wrote Hamlet?"
    assert len(graph.steps()) < len(program.ir.steps())  # the passes did change the program
    assert _runs(graph, question=question).answer == "Shakespeare"
    assert _runs(program.ir, question=question).answer == "Shakespeare"


def test_fused_loop_copies_share_one_parameter_key() -> None:
    program = lmc.loads(
        """
signature Topic = "question, attempt: int -> topic"
signature Answer = "topic, question -> answer"

program Loop(question: str) -> (answers: list[str]) {
    answers = []
    for i in range(2) {
        find = predict Topic(question=question, attempt=i)
        answer = predict Answer(topic=find.topic, question=question)
        answers = answers + [answer.answer]
    }
    return answers = answers
}
"""
    )
    context = compile_context(program, FakeLM(answering()))
    result = FuseStepsPass(tolerance=1.0).apply(program.ir, context)
    assert result.verify() == []
    assert {(s.id, s.param_key) for s in result.steps()} == {
        ("find_then_answer", "find_then_answer"),
        ("find@2_then_answer@2", "find_then_answer"),
    }
    assert set(result.params) == {"find_then_answer"}


WITH_UNREAD_STEP = """\
signature Answer = "question -> answer"
signature Summarize = "question -> summary"
program QA(question: str) -> (answer: str) {
    gen = predict Answer(question=question)
    unread = predict Summarize(question=question)
    return answer = gen.answer
}
"""


def test_a_pass_that_keeps_outputs_is_not_scored_again() -> None:
    # Under --no-cache a second dev run would cost what dead-steps' projection (0) never counted,
    # and on a tight budget its removal was thrown away for want of calls to score it.
    program = lmc.loads(WITH_UNREAD_STEP)
    lm = FakeLM(answering())
    context = compile_context(program, lm)

    result = run_pipeline(program.ir, [DeadStepsPass()], context)

    [record] = result.records
    assert _steps(result.program) == ["gen"]
    assert (record.calls, record.metric_after) == (0, record.metric_before)
    assert len(lm.requests) == 2 * len(ANSWERS)  # the baseline's two steps, once
    assert context.known_score(result.program) is not None  # the artifact's dev misses read it


def test_a_removed_step_that_failed_records_is_scored_again() -> None:
    # A record fails with any of its steps: without the failing dead step it may score higher.
    program = lmc.loads(WITH_UNREAD_STEP)
    right = answering()

    def reply(request: LMRequest) -> str:
        _, outputs, _ = _request_fields(request)
        failing = outputs == ["summary"] and "Hamlet" in str(request.messages)
        return "no JSON" if failing else right(request)

    lm = FakeLM(reply)
    context = compile_context(program, lm)

    result = run_pipeline(program.ir, [DeadStepsPass()], context)

    [record] = result.records
    assert (round(record.metric_before, 3), record.metric_after) == (0.667, 1.0)
