"""A pass's options are checked against their bounds when the pass is made, from a pipeline
string or in Python: a bad value is an input error before any LM call, not a hang, a traceback
after the teacher's calls, or a program written with options it cannot be read back with."""

from __future__ import annotations

import pytest

from lmc.passes.ensemble import EnsemblePass
from lmc.passes.pipeline import PipelineError, parse_pipeline


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # A race whose first share is empty never grows: this one hung the compile.
        ("instruction-search{minibatch=0}", "instruction-search: option minibatch is at least 1"),
        ("joint-search{minibatch=0}", "joint-search: option minibatch is at least 1"),
        ("bootstrap-demos{candidates=0}", "bootstrap-demos: option candidates is at least 1"),
        ("joint-search{finalists=0}", "joint-search: option finalists is at least 1"),
        # One sample is no vote; past 32 the program could not be read back (`n` is 1 to 32).
        ("ensemble{samples=1}", "ensemble: option samples is from 2 to 32; found 1"),
        ("ensemble{samples=40}", "ensemble: option samples is from 2 to 32; found 40"),
        ("ensemble{temperature=3}", "ensemble: option temperature is from 0 to 2; found 3"),
        # One proposal per tip: asking for more used to be cut to six without a word.
        ("instruction-search{candidates=9}", "option candidates is from 1 to 6; found 9"),
        ("dynamic-demos{k=0}", "dynamic-demos: option k is at least 1; found 0"),
    ],
)
def test_an_option_out_of_its_bounds_is_refused_with_them(spec: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("{", r"\{")):
        parse_pipeline(spec)


def test_bounds_hold_for_passes_made_in_python_too() -> None:
    with pytest.raises(PipelineError, match="samples is from 2 to 32"):
        EnsemblePass(samples=1)


def test_values_at_the_bounds_and_zero_where_it_means_none_are_accepted() -> None:
    made = parse_pipeline(
        "ensemble{samples=2,temperature=0},instruction-search{candidates=6,minibatch=1},"
        "joint-search{instructions=0}"
    )

    assert [p.name for p in made] == ["ensemble", "instruction-search", "joint-search"]
