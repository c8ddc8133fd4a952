"""Any budget works: with no pipeline named, the default is fitted to the budget (its most
thorough form that fits), and only a budget below its leanest form is refused."""

from __future__ import annotations

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.builder.optimize import as_dataset
from lmc.compiler.session import BudgetTooSmall, Compiled, compile_program
from lmc.passes.base import CompileContext
from lmc.passes.budget import default_pipeline, projected
from lmc.passes.pipeline import DEFAULT_PIPELINE, DEFAULT_PLANS, parse_pipeline
from lmc.runtime.context import RunContext
from lmc.runtime.metrics import builtin

CLAIM = """
signature Verify = "claim -> label: literal[\\"SUPPORTS\\", \\"REFUTES\\", \\"NOT ENOUGH INFO\\"]"

program Fever(claim: str) -> (label: str) {
    v = predict Verify(claim=claim)
    return label = v.label
}
"""


def fever_sized(train: int = 20, dev: int = 30) -> tuple[lmc.Program, CompileContext]:
    """The issue's case: FEVER with 20 train and 30 dev claims."""
    program = lmc.loads(CLAIM)
    records = [{"claim": f"claim {i}", "label": "SUPPORTS"} for i in range(train + dev)]
    run = lmc.context(FakeLM(lambda request: '{"label": "SUPPORTS"}'), cache=False)
    context = CompileContext(
        run,
        run,
        as_dataset(records[:train], program, "train"),
        as_dataset(records[train:], program, "dev"),
        builtin("exact_match", "label"),
    )
    return program, context


def compile_fever(
    program: lmc.Program, context: CompileContext, run: RunContext, budget: int, said: list[str]
) -> Compiled:
    """The default compile (no pipeline named) of `fever_sized` data within `budget`."""
    return compile_program(
        program,
        context.train,
        context.metric,
        dev=context.dev,
        run=run,
        budget_calls=budget,
        say=said.append,
    )


def test_without_a_budget_the_default_is_its_most_thorough_form() -> None:
    program, context = fever_sized()

    chosen, _ = default_pipeline(program.ir, context, None)

    assert chosen == DEFAULT_PIPELINE == DEFAULT_PLANS[0]


@pytest.mark.parametrize("budget", [1000, 316, 200, 125, 90, 70])
def test_a_budget_gets_the_most_thorough_form_that_fits_it(budget: int) -> None:
    program, context = fever_sized()

    chosen, passes = default_pipeline(program.ir, context, budget)

    assert projected(program.ir, passes, context) <= budget
    richer = DEFAULT_PLANS[: DEFAULT_PLANS.index(chosen)]
    assert all(projected(program.ir, parse_pipeline(plan), context) > budget for plan in richer)


def test_the_issue_budget_of_125_calls_now_compiles_fever() -> None:
    program, context = fever_sized()
    said: list[str] = []

    compiled = compile_fever(program, context, context.run, 125, said)

    assert said[0].startswith("the default pipeline to fit 125 LM calls: dead-steps,")
    assert context.run.stats.total().calls <= 125
    assert compiled.result.records


def test_a_budget_below_the_leanest_form_is_refused_saying_so() -> None:
    program, context = fever_sized()

    with pytest.raises(BudgetTooSmall, match="even the leanest default pipeline may need"):
        compile_program(
            program,
            context.train,
            context.metric,
            dev=context.dev,
            run=context.run,
            budget_calls=40,
        )
    assert context.run.stats.total().calls == 0


def test_a_model_that_needs_repairs_gets_the_form_that_fits_at_its_measured_rate() -> None:
    # Every first reply is malformed and every repair fits: two requests a projected call. The
    # form fitted on projections alone would meet the budget inside its last pass, spending that
    # pass's calls for nothing; fitted again on the baseline's rate, the compile runs to its end.
    program, context = fever_sized()
    repaired = lmc.context(
        FakeLM(lambda request: '{"label": "SUPPORTS"}' if len(request.messages) > 2 else "garbage"),
        cache=False,
    )
    said: list[str] = []

    compiled = compile_fever(program, context, repaired, 200, said)

    fitted = next(line for line in said if line.startswith("the baseline made"))
    assert fitted.startswith("the baseline made 2.00 LM requests per projected call on dev")
    chosen = fitted.rsplit(": ", 1)[1]
    assert 2 * projected(program.ir, parse_pipeline(chosen), context) <= 200
    richer = DEFAULT_PLANS[: DEFAULT_PLANS.index(chosen)]
    assert all(2 * projected(program.ir, parse_pipeline(p), context) > 200 for p in richer)
    assert chosen != default_pipeline(program.ir, context, 200)[0]
    assert not any("stopped" in note for r in compiled.result.records for note in r.notes)
    assert repaired.stats.total().calls <= 200
