"""`lmc eval`: score a program (`.lmp`) or a compiled artifact (`.json`) on a dataset.

The metric is the one given with `--metric`, else the one the artifact was compiled with, else the
`.lmp` file's `metric` declaration. Every record is checked (typed inputs, the expected field the
metric reads) before the first LM call. Per-example results go to stdout, or as JSONL to `--out`;
the last line on stdout is the summary, `metric exact_match(answer) = 0.625 on 8 examples (...)`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from lmc.cli.run import (
    RunFailed,
    RunUsageError,
    _context,
    _failures,
    compiled_for,
    dataset_progress,
)
from lmc.files import write_atomically
from lmc.program import Program
from lmc.runtime.metrics import Metric, MetricError, builtin, parse_metric, python_metric

EXIT_OK = 0

LoadProgram = Callable[[str, str | None], Program]


def add_commands(commands: Any, load_program: LoadProgram) -> None:
    """Register `lmc eval` on the command line's subparsers."""
    evaluate = commands.add_parser("eval", help="score a program or artifact on a dataset")
    evaluate.add_argument("program_file", metavar="PROGRAM.lmp|ARTIFACT.json")
    evaluate.add_argument(
        "--data", required=True, metavar="DATA.jsonl", help="examples: inputs and expected outputs"
    )
    evaluate.add_argument(
        "--metric",
        metavar="NAME(FIELD)|package.module:function",
        help="how to score (default: the artifact's metric, else the file's metric declaration)",
    )
    evaluate.add_argument("--program", help="which program of the file")
    evaluate.add_argument("--out", metavar="RESULTS.jsonl", help="per-example results, as JSONL")
    evaluate.add_argument(
        "--lm", help="model: local (default), local:PATH.gguf, or a litellm string"
    )
    evaluate.add_argument("--api-base", help="address of a served model (OpenAI-style server)")
    evaluate.add_argument("--backend", help="prompt format: json (default), chat, completion")
    evaluate.add_argument("--concurrency", type=int, default=4, help="examples in flight at once")
    evaluate.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the cache"
    )
    evaluate.add_argument("--trace", metavar="TRACE.jsonl", help="write every LM call here")
    evaluate.set_defaults(handler=lambda args, out: cmd_eval(args, out, load_program))


def cmd_eval(args: argparse.Namespace, out: Console, load_program: LoadProgram) -> int:
    """Score the program on every example; print per-example results and the summary."""
    from lmc.runtime.data import DataError, load_dataset
    from lmc.runtime.evaluate import evaluate

    program = load_program(args.program_file, args.program)
    metric = resolve_metric(args.metric, program)
    if args.concurrency < 1:
        raise RunUsageError("--concurrency must be at least 1")
    try:
        data = load_dataset(Path(args.data), program.inputs, [metric.field] if metric.field else [])
    except DataError as error:
        raise RunUsageError(str(error)) from None

    err = Console(stderr=True, highlight=False, markup=False)
    progress = dataset_progress(err)
    context = _context(args, *compiled_for(program))
    started = time.perf_counter()
    try:
        with progress:
            task = progress.add_task(f"eval {program.name}", total=len(data))
            counted = _counting(metric, data.examples, lambda: progress.advance(task))
            result = evaluate(context, program.ir, data.examples, data.inputs, counted)
            progress.update(task, completed=len(data))
    except _failures() as error:
        raise RunFailed(str(error)) from None
    except MetricError as error:
        raise RunUsageError(str(error)) from None
    finally:
        if context.trace is not None:
            context.trace.close()
    elapsed = time.perf_counter() - started

    lines = []
    for index, (example, score, prediction, failure) in enumerate(
        zip(data.examples, result.scores, result.predictions, result.errors, strict=True)
    ):
        line: dict[str, Any] = {"record": index + 1, "score": score, "example": example}
        if failure is None:
            line["prediction"] = prediction
        else:
            line["error"] = failure
        lines.append(line)
    if args.out:
        target = Path(args.out)
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        try:
            write_atomically(target, text.encode("utf-8"))
        except OSError as error:
            raise RunUsageError(f"{target}: cannot write it ({error.strerror})") from None
        err.print(f"wrote {target}")
    else:
        for line in lines:
            out.print(_result_text(line))

    total = context.stats.total()
    failed = sum(1 for e in result.errors if e is not None)
    examples = len(data)
    out.print(
        f"metric {metric.label} = {result.score:.3f} on {examples} "
        f"example{'s' * (examples != 1)} ({total.calls} LM calls, {total.cache_hits} cached, "
        f"{total.repairs} repairs, {failed} failed, {elapsed:.1f}s)"
    )
    return EXIT_OK


def resolve_metric(spec: str | None, program: Program) -> Metric:
    """`--metric`, else the artifact's metric, else the program's `.lmp` declaration.

    Raises `RunUsageError` when there is none, it cannot be found, or a builtin metric reads a
    field the program does not output.
    """
    try:
        if spec:
            metric = parse_metric(spec)
        elif program.compiled is not None and program.compiled.metric is not None:
            metric = metric_from_json(program.compiled.metric)
        elif program.metric is not None:
            metric = builtin(program.metric.name, program.metric.field)
        else:
            raise RunUsageError("no metric: pass --metric NAME(FIELD)")
    except MetricError as error:
        raise RunUsageError(str(error)) from None
    outputs = [f.name for f in program.outputs]
    if metric.field is not None and metric.field not in outputs:
        raise RunUsageError(
            f"metric {metric.label}: '{metric.field}' is not an output of program "
            f"{program.name}; expected one of {', '.join(outputs)}"
        )
    return metric


def metric_from_json(data: Mapping[str, Any]) -> Metric:
    """The metric an artifact records (`Metric.to_json()`): a builtin over a field, or a Python
    metric named `package.module:function`."""
    name, field = data.get("name"), data.get("field")
    if not isinstance(name, str) or not (field is None or isinstance(field, str)):
        raise MetricError(f"the artifact's metric is not NAME(FIELD) or a function: {dict(data)}")
    return builtin(name, field) if field is not None else python_metric(name)


def _counting(
    metric: Metric, examples: tuple[dict[str, Any], ...], advance: Callable[[], None]
) -> Metric:
    """`metric`, advancing the progress bar per scored example (a metric that raises is
    reported by `evaluate`, naming the example)."""

    def score(example: Mapping[str, Any], prediction: Mapping[str, Any]) -> float | bool:
        value = metric.score_fn(example, prediction)
        advance()
        return value

    return replace(metric, score_fn=score)


def _result_text(line: Mapping[str, Any]) -> str:
    head = f"record {line['record']}: {line['score']:.3f}"
    if "error" in line:
        return f"{head}  error: {line['error']}"
    return f"{head}  {json.dumps(line['prediction'], ensure_ascii=False)}"
