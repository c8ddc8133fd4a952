"""Compiling from Python, as DSPy users write it: `lmc.compile(program, trainset=..., metric=...)`
and `lmc.BootstrapFewShot(metric=...).compile(program, trainset=...)`.

Takes what Python code has at hand (an `lmc.Module` or a `Program`, lists of dicts or DSPy
`Example`s, a metric function, a model string) and hands them to the compiler's
`compile_program`, which works on programs, datasets and metrics alone.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lmc.builder.build import build
from lmc.compiler.program import Program
from lmc.compiler.session import compile_program, pass_line, plan_line
from lmc.errors import InputError
from lmc.files import DataError
from lmc.runtime.context import RunContext, current_context
from lmc.runtime.context import context as open_context
from lmc.runtime.data import Dataset, coerce, hash_records, load_dataset
from lmc.runtime.metrics import Metric, builtin, parse_metric, python_score, source_hash
from lmc.strings import printable


def as_metric(metric: str | Metric | Callable[..., Any], program: Program) -> Metric:
    """A metric from a spec (`exact_match(answer)`, `pkg.mod:fn`), a Metric, or a function.
    A function is named by its import path where it has one, so that the artifact a compile
    writes says which metric `lmc eval` scores it with."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return parse_metric(metric)
    return Metric(function_name(metric), None, python_score(metric), source_hash(metric))


def function_name(function: Callable[..., Any]) -> str:
    """`package.module:function` for a function importable by that path; its bare name for one
    defined in a script (`__main__`) or inside another function."""
    name = getattr(function, "__name__", "metric")
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return str(name)
    return f"{module}:{qualname}"


# What Python code may give as a dataset: records in memory, or a JSONL file's path.
Records = Iterable[Any] | str | os.PathLike[str]


def as_dataset(records: Records, program: Program, name: str, *, finite: bool = True) -> Dataset:
    """Examples from a JSONL file (by its path, checked as `lmc compile --train` checks it), or
    from dicts, or from DSPy-style objects with `toDict()`. Each record must be JSON data; with
    `finite`, without NaN or infinity too (a compile's artifact holds its records as demos)."""
    if isinstance(records, str | os.PathLike):
        # A string is a path, never records: iterated, it gave one "record" per character.
        return load_dataset(Path(records), program.inputs)
    examples = []
    for number, record in enumerate(records, 1):
        if hasattr(record, "toDict"):
            record = record.toDict()
        if not isinstance(record, Mapping):
            raise DataError(
                f"{name} record {number}: expected a dict of field values or a DSPy Example; "
                f"found {printable(repr(record))[:80]}"
            )
        examples.append(_json_data(dict(record), f"{name} record {number}", finite))
    inputs = tuple(
        coerce(program.inputs, e, f"{name} example {i + 1}") for i, e in enumerate(examples)
    )
    return Dataset(name, tuple(examples), inputs, hash_records(examples))


def _json_data(record: dict[str, Any], where: str, finite: bool) -> dict[str, Any]:
    """`record`, refused (naming its field) where it holds what JSON cannot: a dataset is hashed
    as JSON, and a compile's records become demos and scores in its artifact, so a NaN from a
    pandas frame must stop the compile here, not the artifact's write after it."""
    for field, value in record.items():
        try:
            json.dumps(value, allow_nan=not finite)
        except ValueError as error:
            said = str(error)  # "Out of range float values...", or a circular reference
            finite_only = said.startswith("Out of range float")
            problem = "a number that is not finite (NaN or infinity)" if finite_only else said
        except TypeError as error:  # JSON's own words: "Object of type datetime is not ..."
            problem = str(error).removesuffix(" is not JSON serializable")
        else:
            continue
        raise DataError(
            f"{where}: '{field}' holds {problem}; expected JSON data (text, finite numbers, "
            "true/false, None, and lists and dicts of them)"
        )
    return record


def compile(
    program: Program | Any,
    *,
    trainset: Records,
    metric: str | Metric | Callable[..., Any] | None = None,
    devset: Records | None = None,
    pipeline: str | None = None,
    lm: str | RunContext | None = None,
    teacher: str | RunContext | None = None,
    seed: int = 0,
    budget_calls: int | None = None,
    resume: bool = False,
    save: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Program:
    """Optimize `program` (a Program, or an lmc.Module to build) and return the compiled one,
    which carries its pass log (`compiled.log`). With `progress`, the projected calls and each
    finished pass are printed on stderr, as `lmc compile` shows them. `resume` goes on after the
    last finished pass of an interrupted compile of the same inputs; `save` writes the result
    (`.json` artifact or `.lmp` text) as `program.save` would."""
    if not isinstance(program, Program):
        program = build(program)
    if metric is None:
        declared = program.metric
        if declared is None:
            raise InputError("lmc.compile needs a metric: metric='exact_match(answer)'")
        metric = builtin(declared.name, declared.field)
    run = lm if isinstance(lm, RunContext) else (open_context(lm) if lm else current_context())
    teacher_context = (
        teacher if isinstance(teacher, RunContext) else (open_context(teacher) if teacher else None)
    )
    scorer = as_metric(metric, program)
    compiled = compile_program(
        program,
        as_dataset(trainset, program, "train"),
        scorer,
        dev=as_dataset(devset, program, "dev") if devset is not None else None,
        pipeline=pipeline,
        run=run,
        teacher=teacher_context,
        seed=seed,
        budget_calls=budget_calls,
        resume=resume,
        **(_progress_on_stderr(budget_calls, scorer.label) if progress else {}),
    )
    if save is not None:
        compiled.program.save(save)
    return compiled.program


def _progress_on_stderr(budget: int | None, metric: str) -> dict[str, Any]:
    """What `lmc compile` shows on a terminal, as plain lines on stderr: the projected calls,
    each finished pass and what the passes say."""

    def show(line: str) -> None:
        print(f"lmc: {printable(line)}", file=sys.stderr, flush=True)

    return {
        "say": lambda message: show(f"  {message}"),
        "on_plan": lambda stages: show(plan_line(stages, budget)),
        "on_record": lambda record: show(pass_line(record, metric)),
    }


class BootstrapFewShot:
    """DSPy's `BootstrapFewShot(metric=...).compile(program, trainset=...)`, on lmc's
    `bootstrap-demos` pass: each step is shown up to `max_bootstrapped_demos` demos, taken from
    teacher runs whose metric reaches `metric_threshold` (a truthy score when None, as in DSPy)
    and then from up to `max_labeled_demos` labelled train examples. Unlike DSPy, labelled
    examples do not add demos beyond `max_bootstrapped_demos`: a small model's prompt stays
    short. A failed teacher run is left out and never stops the compile, so `max_errors` has
    nothing to limit. An option DSPy has and lmc cannot honour at all is an error rather than a
    silent no-op."""

    def __init__(
        self,
        metric: str | Metric | Callable[..., Any],
        metric_threshold: float | None = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
    ) -> None:
        if teacher_settings:
            raise TypeError(
                "teacher_settings: lmc's teacher is a model: lmc.compile(..., teacher='NAME')"
            )
        if max_rounds != 1:
            raise TypeError("max_rounds: lmc bootstraps in one round (use candidates= on the pass)")
        self.metric = metric
        # DSPy keeps a demo when the metric is truthy, or reaches the threshold when one is given.
        self.threshold = 1e-9 if metric_threshold is None else metric_threshold
        self.max_demos = max_bootstrapped_demos
        self.labeled = max_labeled_demos

    def compile(
        self,
        student: Program | Any,
        *,
        trainset: Records,
        teacher: Any = None,
        valset: Records | None = None,
    ) -> Program:
        if teacher is not None:
            raise TypeError(
                "teacher: lmc's teacher is a model that runs the same program: "
                "lmc.compile(program, ..., teacher='openai/NAME')"
            )
        return compile(
            student,
            trainset=trainset,
            devset=valset,
            metric=self.metric,
            pipeline=f"bootstrap-demos{{{self.bootstrap_options()}}}",
        )

    def bootstrap_options(self) -> str:
        """The options of the `bootstrap-demos` pass this optimizer runs."""
        return f"max_demos={self.max_demos},labeled={self.labeled},threshold={self.threshold}"
