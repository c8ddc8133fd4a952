"""The data-driven passes, `bootstrap-demos`, `prune-demos`, `instruction-search` and
`dynamic-demos`, on their golden cases, asserted directly.

`test_golden.py` compares each case's whole output with its expected file; the tests here pin the
behaviour each case is there to show, so that rewriting the golden files (`LMC_UPDATE_GOLDEN=1`)
cannot accept a regression of it unnoticed. Each case's fake LM is its `.replies.json` script.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from golden_cases import GOLDEN, Outcome, beside, load_case, run_case

from lmc.ir.graph import Demo, ProgramGraph
from lmc.passes.dynamic_demos import DynamicDemosPass
from lmc.passes.pipeline import PipelineError, parse_pipeline


def _run(pass_name: str, case: str) -> Outcome:
    return run_case(load_case(GOLDEN / pass_name / f"{case}.lmp"))


def _records(pass_name: str, case: str, suffix: str = ".train.jsonl") -> list[dict[str, Any]]:
    path = beside(GOLDEN / pass_name / f"{case}.lmp", suffix)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _demo_values(graph: ProgramGraph, key: str, field: str) -> list[Any]:
    return [dict(demo.fields)[field] for demo in graph.params[key].demos]


def _input_of(pass_name: str, case: str) -> ProgramGraph:
    return load_case(GOLDEN / pass_name / f"{case}.lmp").program.ir


# bootstrap-demos ---------------------------------------------------------------------------------


def test_bootstrap_demos_come_only_from_runs_that_passed_and_reach_every_step() -> None:
    outcome = _run("bootstrap-demos", "only_passing_runs_become_demos")

    program = outcome.program
    # The spider and planet runs answered wrongly: neither step has a demo from them.
    assert sorted(_demo_values(program, "rewrite", "question")) == [
        "What is the capital of France?",
        "Who wrote Hamlet?",
    ]
    # The step between gets the values the run passed through it, which no record names.
    assert set(program.params["lookup"].demos) == {
        Demo((("query", "France capital"), ("answer", "Paris"))),
        Demo((("query", "Hamlet author"), ("answer", "Shakespeare"))),
    }
    assert "bootstrap-demos: 2 of 4 teacher runs passed the metric" in outcome.said
    assert (outcome.record.metric_before, outcome.record.metric_after) == (0.0, 1.0)
    assert outcome.record.gain == [1.0, 1.0, 1.0]  # every dev example went from wrong to right


def test_bootstrap_demos_keeps_the_program_when_no_demo_set_scores_higher() -> None:
    outcome = _run("bootstrap-demos", "no_demo_set_beats_the_program")

    assert outcome.program == _input_of("bootstrap-demos", "no_demo_set_beats_the_program")
    assert outcome.said[-1] == (
        "bootstrap-demos: demo set 1 won the race, but its dev gain +0.000 [+0.000, +0.000] "
        "does not hold; the program is kept as it was"
    )


def test_bootstrap_demos_uses_the_first_labeled_train_records_when_no_run_passes() -> None:
    outcome = _run("bootstrap-demos", "labelled_records_are_demos")

    first_two = _records("bootstrap-demos", "labelled_records_are_demos")[:2]
    assert outcome.program.params["gen"].demos == tuple(
        Demo(tuple(record.items())) for record in first_two
    )
    assert "bootstrap-demos: 0 of 3 teacher runs passed the metric" in outcome.said


# prune-demos -------------------------------------------------------------------------------------


def test_prune_demos_drops_a_misleading_demo_and_one_that_adds_nothing() -> None:
    outcome = _run("prune-demos", "demos_that_do_not_help_dropped")

    assert _demo_values(outcome.program, "gen", "question") == ["Who wrote Hamlet?"]
    assert outcome.said == ["prune-demos: dropped 2 demos, kept 1"]
    assert (outcome.record.metric_before, outcome.record.metric_after) == (0.0, 1.0)


def test_prune_demos_keeps_demos_whose_removal_lowers_the_dev_metric() -> None:
    outcome = _run("prune-demos", "demos_that_help_together_kept")

    assert outcome.program == _input_of("prune-demos", "demos_that_help_together_kept")


def test_prune_demos_judges_each_steps_demos_on_their_own() -> None:
    outcome = _run("prune-demos", "each_step_keeps_what_it_needs")

    assert _demo_values(outcome.program, "rewrite", "question") == ["Who wrote Hamlet?"]
    assert outcome.program.params["lookup"].demos == ()
    assert outcome.record.metric_after == 1.0


# instruction-search ------------------------------------------------------------------------------


def test_instruction_search_keeps_the_candidate_that_scores_best() -> None:
    outcome = _run("instruction-search", "best_candidate_kept")

    assert outcome.program.params["gen"].instruction == (
        "Reply with the name alone, as an encyclopedia would title it."
    )
    assert (outcome.record.metric_before, outcome.record.metric_after) == (0.0, 1.0)


def test_instruction_search_keeps_an_instruction_no_candidate_beats() -> None:
    # The first candidate ties with the learned instruction: a tie does not replace it.
    outcome = _run("instruction-search", "original_kept_when_no_candidate_beats_it")

    assert outcome.program == _input_of(
        "instruction-search", "original_kept_when_no_candidate_beats_it"
    )
    assert outcome.said[-1] == (
        "instruction-search: gen keeps its instruction; the best candidate's dev gain "
        "+0.000 [+0.000, +0.000] does not hold"
    )
    assert outcome.record.metric_after == outcome.record.metric_before == 0.2


# dynamic-demos -----------------------------------------------------------------------------------


def _pool_values(graph: ProgramGraph, key: str, field: str) -> list[Any]:
    nearest = graph.params[key].nearest
    assert nearest is not None
    return [dict(demo.fields)[field] for demo in nearest.pool]


def test_dynamic_demos_pools_a_steps_train_examples_and_keeps_them_when_they_lift_dev() -> None:
    outcome = _run("dynamic-demos", "nearest_demos_lift_many_labels")
    nearest = outcome.program.params["c"].nearest

    assert nearest is not None
    assert (nearest.k, nearest.kind) == (2, "bm25")
    assert outcome.program.params["c"].demos == ()
    train = _records("dynamic-demos", "nearest_demos_lift_many_labels")
    assert _pool_values(outcome.program, "c", "question") == [r["question"] for r in train]
    assert (outcome.record.metric_before, outcome.record.metric_after) == (0.0, 5 / 6)
    assert outcome.record.gain is not None
    assert outcome.record.gain[1] > 0


def test_dynamic_demos_keeps_the_program_when_the_pool_buys_nothing() -> None:
    outcome = _run("dynamic-demos", "demos_that_do_not_help_are_not_kept")

    assert outcome.program == _input_of("dynamic-demos", "demos_that_do_not_help_are_not_kept")
    assert "does not hold" in outcome.said[-1]


def test_dynamic_demos_pools_passing_teacher_runs_when_no_record_names_the_steps_fields() -> None:
    outcome = _run("dynamic-demos", "teacher_runs_fill_the_pool")

    assert sorted(_pool_values(outcome.program, "c", "label")) == ["card_arrival", "change_pin"]
    assert outcome.said[0] == "dynamic-demos: 2 of 3 teacher runs passed the metric"


def test_dynamic_demos_pools_a_seeded_choice_of_at_most_pool_examples_in_train_order() -> None:
    case = load_case(GOLDEN / "dynamic-demos" / "nearest_demos_lift_many_labels.lmp")
    a_pass = DynamicDemosPass(pool=3)

    first = a_pass.labeled(case.program.ir, case.context)["c"]
    again = a_pass.labeled(case.program.ir, case.context)["c"]

    train = [r["question"] for r in _records("dynamic-demos", "nearest_demos_lift_many_labels")]
    questions = [dict(d.fields)["question"] for d in first]
    assert first == again
    assert len(questions) == 3
    assert questions == sorted(questions, key=train.index)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dynamic-demos{k=0}", "dynamic-demos: option k is at least 1; found 0"),
        ("dynamic-demos{pool=0}", "dynamic-demos: option pool is at least 1; found 0"),
        (
            "dynamic-demos{kind=tfidf}",
            "dynamic-demos: kind is auto, bm25 or embeddings; found 'tfidf'",
        ),
    ],
)
def test_dynamic_demos_options_are_checked_before_anything_runs(spec: str, message: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(message)):
        parse_pipeline(spec)
