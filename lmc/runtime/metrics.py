"""How well a prediction matches an example: the builtin metrics and Python ones.

Builtins compare one output field with the example's expected value of that field:
`exact_match` and `contains` (after normalizing case, punctuation, articles and spaces), `f1`
(token overlap) and `numeric` (numbers equal after normalization). A Python metric is named as
`package.module:function` and called as `function(example, prediction) -> float | bool`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lmc.errors import USER_CODE_ERRORS, InputError
from lmc.plugins import (
    METRICS,
    MissingAttribute,
    Unimportable,
    UnknownName,
    import_raised,
    import_target,
)


class MetricError(InputError):
    """A metric that cannot be found or does not fit the program."""


class MetricUnavailable(MetricError, Unimportable):
    """A Python metric that cannot be imported."""


def normalize(text: Any) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    lowered = str(text).lower()
    no_punctuation = "".join(c for c in lowered if c not in string.punctuation)
    no_articles = re.sub(r"\b(a|an|the)\b", " ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(expected: Any, predicted: Any) -> float:
    return float(normalize(expected) == normalize(predicted))


def contains(expected: Any, predicted: Any) -> float:
    wanted = normalize(expected)
    return float(bool(wanted) and wanted in normalize(predicted))


def f1(expected: Any, predicted: Any) -> float:
    truth, guess = normalize(expected).split(), normalize(predicted).split()
    common = sum((Counter(truth) & Counter(guess)).values())
    if not truth or not guess or common == 0:
        return float(truth == guess)
    precision, recall = common / len(guess), common / len(truth)
    return 2 * precision * recall / (precision + recall)


# A minus sign right after a letter or digit joins two words or numbers (`10-12`, `2024-05-01`,
# `forty-2`): the number after it is not negative.
_NUMBER = re.compile(r"(?:(?<!\w)-)?\d[\d,]*(?:\.\d+)?")


def to_number(value: Any) -> float | None:
    """The number a value states: itself, or the last number in its text (`"#### 1,234"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = _NUMBER.findall(str(value))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric(expected: Any, predicted: Any) -> float:
    a, b = to_number(expected), to_number(predicted)
    return float(a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(a)))


# A run's step calls, as a metric sees them while demos are bootstrapped: (step, inputs, outputs).
Trace = list[tuple[str, dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class Metric:
    """A named score in [0, 1] for one example and the program's prediction of it."""

    name: str
    field: str | None
    # (example, prediction, trace): trace is None except while a compile bootstraps demos,
    # when it lists the run's step calls as (step, inputs, outputs), as DSPy's `trace` does.
    score_fn: Callable[[Mapping[str, Any], Mapping[str, Any], Trace | None], float | bool]
    # A hash of a Python metric's source ("" for a builtin, which its name says): a compile's
    # checkpoint is keyed by it, so that one resumed after the metric was edited starts over.
    code: str = dataclasses.field(default="", compare=False)

    def score(
        self, example: Mapping[str, Any], prediction: Mapping[str, Any], trace: Trace | None = None
    ) -> float:
        value = self.score_fn(example, prediction, trace)
        number = _finite(value)
        if number is None:
            raise MetricError(f"metric {self.label} returned {value!r}; expected a number or bool")
        return number

    @property
    def label(self) -> str:
        return f"{self.name}({self.field})" if self.field else self.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "field": self.field}


def _finite(value: Any) -> float | None:
    """A metric's return value as a finite float: a bool or number, numpy's too (`np.bool_`,
    `np.float32`); None for anything else, and for NaN and infinity, which would make a mean
    score NaN and every comparison of candidates false."""
    if not hasattr(type(value), "__float__"):  # None, text, lists, ...
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def builtin(name: str, field: str) -> Metric:
    """The field metric registered as `name` (see `lmc.plugins.METRICS`), on `field`."""
    try:
        compare: Callable[[Any, Any], float] = METRICS.load(name)
    except UnknownName as error:
        raise MetricError(str(error)) from None

    def score(example: Mapping[str, Any], prediction: Mapping[str, Any], trace: Any) -> float:
        if field not in example:
            raise MetricError(f"the example has no expected '{field}' for {name}({field})")
        return compare(example[field], prediction.get(field, ""))

    return Metric(name, field, score)


def python_metric(reference: str) -> Metric:
    """`package.module:function`, called as `function(example, prediction)`."""
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise MetricError(f"expected NAME(FIELD) or package.module:function; found '{reference}'")
    try:
        function = import_target(reference)
    except ImportError as error:
        raise MetricUnavailable(f"cannot import {module_name}: {error}") from None
    except MissingAttribute:
        function = None
    except USER_CODE_ERRORS as error:  # the user's module may raise anything while imported
        raise MetricUnavailable(import_raised(module_name, f"metric {reference}", error)) from None
    if not callable(function):
        raise MetricUnavailable(f"{module_name} has no function '{function_name}'")

    return Metric(reference, None, python_score(function), source_hash(function))


def source_hash(function: Callable[..., Any]) -> str:
    """A short hash of `function`'s source, "" when Python cannot find it (a builtin, a
    function made by `exec`): such a metric is known by its name alone."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def python_score(
    function: Callable[..., Any],
) -> Callable[[Mapping[str, Any], Mapping[str, Any], Trace | None], float | bool]:
    """A DSPy-style metric, `function(example, prediction[, trace])`: the example read as
    attributes, the prediction a Prediction; `trace` passed when the function takes one."""
    from lmc.runtime.prediction import Prediction

    takes_trace = _takes_trace(function)

    def score(
        example: Mapping[str, Any], prediction: Mapping[str, Any], trace: Trace | None
    ) -> Any:
        if takes_trace:
            return function(Record(example), Prediction(**prediction), trace)
        return function(Record(example), Prediction(**prediction))

    return score


def _takes_trace(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


class Record(dict[str, Any]):
    """An example read as `example.answer` or `example["answer"]`, as DSPy metrics do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_SPEC = re.compile(r"^(\w+)\((\w+)\)$")


def parse_metric(spec: str) -> Metric:
    """`exact_match(answer)` or `package.module:function`."""
    if not spec.strip():
        raise MetricError(
            "the metric is empty; expected one such as exact_match(answer) (NAME(FIELD)), "
            "or package.module:function"
        )
    match = _SPEC.match(spec.strip())
    if match:
        return builtin(match.group(1), match.group(2))
    return python_metric(spec.strip())
