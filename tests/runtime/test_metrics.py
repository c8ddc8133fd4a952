"""The metrics a compile optimizes and `lmc eval` reports: the builtins on tables of (expected,
predicted, score), and `parse_metric` for `NAME(FIELD)` and `package.module:function` specs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lmc.plugins import METRICS
from lmc.runtime.metrics import Metric, MetricError, builtin, parse_metric, to_number


def score(name: str, expected: Any, predicted: Any) -> float:
    """`name(answer)` for one example whose expected answer is `expected`."""
    return builtin(name, "answer").score({"answer": expected}, {"answer": predicted})


# exact_match -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "predicted", "wanted"),
    [
        ("Paris", "Paris", 1.0),
        ("Paris", "paris", 1.0),  # case
        ("Paris", "PARIS.", 1.0),  # punctuation
        ("Paris", "  Paris  ", 1.0),  # surrounding spaces
        ("the Eiffel Tower", "Eiffel tower!", 1.0),  # articles
        ("An apple", "apple", 1.0),
        ("a cat", "the cat", 1.0),
        ("U.S.A.", "usa", 1.0),
        ("New  York", "new york", 1.0),  # inner spaces
        ("theater", "ater", 0.0),  # an article only as a whole word
        ("Paris", "Paris, France", 0.0),
        ("Paris", "Lyon", 0.0),
        ("Paris", "", 0.0),
        (42, "42", 1.0),  # values compare as text
        (True, "true", 1.0),
    ],
)
def test_exact_match_compares_normalized_text(expected: Any, predicted: Any, wanted: float) -> None:
    assert score("exact_match", expected, predicted) == wanted


# contains ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "predicted", "wanted"),
    [
        ("Paris", "The capital is Paris.", 1.0),
        ("paris", "PARIS, FRANCE", 1.0),
        ("the Eiffel Tower", "It is Eiffel Tower, in Paris", 1.0),
        ("Paris", "Lyon", 0.0),
        ("Paris, France", "Paris", 0.0),  # the expected text must be inside the prediction
        ("", "anything", 0.0),  # an empty expectation never counts as found
        ("...", "anything", 0.0),  # nor one that normalizes to nothing
    ],
)
def test_contains_finds_the_normalized_answer_in_the_prediction(
    expected: Any, predicted: Any, wanted: float
) -> None:
    assert score("contains", expected, predicted) == wanted


# f1 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "predicted", "wanted"),
    [
        ("the quick brown fox", "Quick brown fox.", 1.0),
        ("quick brown fox", "quick fox jumps", 2 / 3),  # 2 of 3 either way
        ("quick brown fox", "quick", 0.5),  # precision 1, recall 1/3
        ("quick", "quick brown fox jumps", 0.4),  # precision 1/4, recall 1
        ("x y y", "y y z", 2 / 3),  # repeated tokens count as often as they occur
        ("quick brown fox", "slow red dog", 0.0),
        ("quick brown fox", "", 0.0),
        ("", "", 1.0),  # nothing expected, nothing said
        ("", "something", 0.0),
    ],
)
def test_f1_scores_token_overlap(expected: Any, predicted: Any, wanted: float) -> None:
    assert score("f1", expected, predicted) == pytest.approx(wanted)


# numeric -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "predicted", "wanted"),
    [
        ("#### 1,234", 1234, 1.0),  # GSM8K-style answers
        ("#### 1,234", "1234", 1.0),
        (1234, "The total is 1,234.", 1.0),
        ("She has 3 apples, then 5", "5", 1.0),  # the last number stated
        ("42", 42.0, 1.0),
        ("42", "42.0", 1.0),
        ("-7", -7, 1.0),
        ("$1,234.50", 1234.5, 1.0),
        (0.1 + 0.2, "0.3", 1.0),  # float noise is not a difference
        ("42", "43", 0.0),
        ("42", "-42", 0.0),
        ("42", "forty-two", 0.0),
        ("no number", "no number", 0.0),  # equal text that is not a number scores 0
        (1, True, 0.0),  # a bool is never a number
        (True, True, 0.0),
        (0, False, 0.0),
    ],
)
def test_numeric_compares_the_numbers_stated(expected: Any, predicted: Any, wanted: float) -> None:
    assert score("numeric", expected, predicted) == wanted


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("#### 1,234", 1234.0),
        (7, 7.0),
        (2.5, 2.5),
        ("x = -3.25", -3.25),
        ("-7", -7.0),
        ("between 10-12", 12.0),  # a range's dash is no minus sign
        ("on 2024-05-01", 1.0),
        (True, None),
        (False, None),
        ("none here", None),
        (None, None),
    ],
)
def test_to_number_reads_the_last_number_and_never_a_bool(value: Any, number: float | None) -> None:
    assert to_number(value) == number


# every builtin -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRICS.names())
def test_a_builtin_scores_a_prediction_without_the_field_as_empty(name: str) -> None:
    metric = builtin(name, "answer")

    assert metric.score({"answer": "Paris"}, {}) == 0.0


@pytest.mark.parametrize("name", METRICS.names())
def test_a_builtin_on_an_example_without_the_field_is_a_metric_error(name: str) -> None:
    metric = builtin(name, "answer")

    with pytest.raises(MetricError, match=rf"the example has no expected 'answer' for {name}"):
        metric.score({"question": "Capital of France?"}, {"answer": "Paris"})


# parse_metric ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRICS.names())
def test_parse_metric_reads_name_and_field(name: str) -> None:
    metric = parse_metric(f"{name}(answer)")

    assert (metric.name, metric.field) == (name, "answer")
    assert metric.label == f"{name}(answer)"
    assert metric.to_json() == {"name": name, "field": "answer"}


def test_parse_metric_ignores_surrounding_spaces() -> None:
    assert parse_metric("  exact_match(answer) \n").label == "exact_match(answer)"


def test_a_parsed_builtin_scores_its_own_field_only() -> None:
    metric = parse_metric("exact_match(label)")
    example = {"answer": "no", "label": "Yes"}

    assert metric.score(example, {"answer": "yes", "label": "yes"}) == 1.0
    assert metric.score(example, {"answer": "no", "label": "no"}) == 0.0


def test_an_unknown_metric_names_the_builtins() -> None:
    with pytest.raises(MetricError) as raised:
        parse_metric("bleu(answer)")

    assert str(raised.value) == (
        "unknown metric 'bleu'; expected 'contains', 'exact_match', 'f1' or 'numeric'"
    )


@pytest.mark.parametrize("spec", ["exact_match", "exact_match(answer", "exact_match()", ":f"])
def test_a_spec_that_is_neither_form_says_what_was_expected(spec: str) -> None:
    with pytest.raises(MetricError) as raised:
        parse_metric(spec)

    assert str(raised.value) == (
        f"expected NAME(FIELD) or package.module:function; found '{spec.strip()}'"
    )


@pytest.mark.parametrize("spec", ["", "  "])
def test_an_empty_spec_asks_for_a_metric(spec: str) -> None:
    with pytest.raises(MetricError) as raised:
        parse_metric(spec)

    assert str(raised.value) == (
        "the metric is empty; expected one such as exact_match(answer) (NAME(FIELD)), or "
        "package.module:function"
    )


# Python metrics ----------------------------------------------------------------------------------

SCORING = """\
def close_enough(example, prediction):
    return example.answer.lower() in prediction.answer.lower()


def by_item(example, prediction):
    return float(example["answer"] == prediction["answer"])


def half(example, prediction):
    return 0.5


not_a_function = 3
"""


@pytest.fixture
def metrics_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package `lmc_test_metrics` with a module `scoring` of metrics, importable for one test."""
    package = tmp_path / "lmc_test_metrics"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "scoring.py").write_text(SCORING, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lmc_test_metrics.scoring"
    for name in ("lmc_test_metrics.scoring", "lmc_test_metrics"):
        sys.modules.pop(name, None)


def test_a_python_metric_reads_example_and_prediction_as_attributes(metrics_package: str) -> None:
    metric = parse_metric(f"{metrics_package}:close_enough")

    assert metric.score({"answer": "Paris"}, {"answer": "It is PARIS"}) == 1.0
    assert metric.score({"answer": "Paris"}, {"answer": "Lyon"}) == 0.0


def test_a_python_metric_reads_example_and_prediction_as_items(metrics_package: str) -> None:
    metric = parse_metric(f"{metrics_package}:by_item")

    assert metric.score({"answer": "4"}, {"answer": "4"}) == 1.0


def test_a_python_metric_may_score_between_zero_and_one(metrics_package: str) -> None:
    assert parse_metric(f"{metrics_package}:half").score({}, {}) == 0.5


def test_a_python_metric_is_labelled_by_its_reference(metrics_package: str) -> None:
    metric = parse_metric(f"{metrics_package}:close_enough")

    assert isinstance(metric, Metric)
    assert metric.field is None
    assert metric.label == f"{metrics_package}:close_enough"
    assert metric.to_json() == {"name": f"{metrics_package}:close_enough", "field": None}


def test_a_python_metric_in_a_missing_module_says_it_cannot_import_it() -> None:
    with pytest.raises(MetricError) as raised:
        parse_metric("lmc_no_such_package.scoring:close_enough")

    assert str(raised.value).startswith("cannot import lmc_no_such_package.scoring: ")
    assert "lmc_no_such_package" in str(raised.value).split(": ", 1)[1]


def test_a_python_metric_missing_from_its_module_names_both(metrics_package: str) -> None:
    with pytest.raises(MetricError) as raised:
        parse_metric(f"{metrics_package}:no_such_metric")

    assert str(raised.value) == f"{metrics_package} has no function 'no_such_metric'"


def test_a_python_metric_that_is_not_callable_is_not_a_function(metrics_package: str) -> None:
    with pytest.raises(MetricError, match="has no function 'not_a_function'"):
        parse_metric(f"{metrics_package}:not_a_function")


# What a metric returns ---------------------------------------------------------------------------


def returning(value: Any) -> Metric:
    return Metric("returns", None, lambda example, prediction, trace: value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_metric_that_returns_no_finite_number_is_a_metric_error(value: float) -> None:
    # A NaN would make the mean score NaN, and every comparison of candidates false.
    with pytest.raises(MetricError, match="expected a number or bool"):
        returning(value).score({}, {})


def test_a_metric_may_return_numpys_numbers_and_bools() -> None:
    numpy = pytest.importorskip("numpy")

    assert returning(numpy.bool_(True)).score({}, {}) == 1.0
    assert returning(numpy.float32(0.5)).score({}, {}) == 0.5
    assert returning(numpy.int64(0)).score({}, {}) == 0.0
    with pytest.raises(MetricError):
        returning(numpy.float64("nan")).score({}, {})


@pytest.mark.parametrize("value", [None, "1.0", b"1", [1.0]])
def test_a_metric_that_returns_no_number_is_a_metric_error(value: Any) -> None:
    with pytest.raises(MetricError, match="expected a number or bool"):
        returning(value).score({}, {})
