"""`lmc eval`: score a program (`.lmp`) or a compiled artifact (`.json`) on a dataset.

The metric is the one given with `--metric`, else the one the artifact was compiled with, else the
`.lmp` file's `metric` declaration. Every record is checked (typed inputs, the expected field the
metric reads) before the first LM call. Per-example results go to stdout, or as JSONL to `--out`;
the last line on stdout is the summary, `metric exact_match(answer) = 0.625 on 8 examples (...)`.
An example whose program run failed scores 0 and is counted in the summary; the exit code is then 1,
after everything (results, report, summary) is written.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from lmc.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from lmc.cli.loading import load_program, open_corpora
from lmc.cli.running import (
    Output,
    check_outputs,
    compiled_for,
    loops_closed,
    model_work,
    program_reads,
    run_context,
)
from lmc.compiler.program import Program
from lmc.files import write_atomically
from lmc.report.eval_page import EvalRun
from lmc.runtime.context import RunContext
from lmc.runtime.data import Dataset, load_dataset
from lmc.runtime.evaluate import Evaluation, evaluate
from lmc.runtime.functions import import_callables
from lmc.runtime.metrics import Metric, MetricError, builtin, parse_metric
from lmc.runtime.progress import WorkProgress, counting
from lmc.strings import json_text, printable


def run(args: argparse.Namespace) -> int:
    """Score the program on every example; print per-example results and the summary."""
    program = load_program(args.program_file, args.program, args.corpus or [])
    outputs = [
        Output("--out", args.out, "the results"),
        Output("--trace", args.trace, "the trace", in_place=True),
        Output("--report", args.report, "the report"),
    ]
    check_outputs(
        outputs, {"the --data file": args.data, **program_reads(args.program_file, program)}
    )
    open_corpora(program)
    metric = resolve_metric(args.metric, program)
    data = load_dataset(Path(args.data), program.inputs, [metric.field] if metric.field else [])
    import_callables(program.ir)
    context = run_context(args, *compiled_for(program))
    started = time.perf_counter()
    try:
        result = _evaluate(program, metric, data, context)
    finally:
        if context.trace is not None:
            context.trace.close()
    elapsed = time.perf_counter() - started
    _report(_result_lines(data, result), args.out)
    if args.report:
        run_described = EvalRun(
            program,
            metric,
            data,
            args.data,
            model=context.model or context.lm.identity,
            backend=context.backend.name,
            command=shlex.join(args.command_line),
            seconds=elapsed,
        )
        _write_eval_report(run_described, result, args.report)
    total = context.stats.total()
    failed = sum(1 for e in result.errors if e is not None)
    examples = len(data)
    for line in (model_work(total, elapsed), loops_closed(total)):
        if line is not None:  # on stderr: stdout's last line stays the summary
            _stderr().print(line, soft_wrap=True)
    print(
        f"metric {metric.label} = {result.score:.3f} on {examples} "
        f"example{'s' * (examples != 1)} ({total.calls} LM calls, {total.cache_hits} cached, "
        f"{total.repairs} repairs, {failed} failed, {elapsed:.1f}s)"
    )
    # As `lmc run --data`: a script must not read a score of failed examples as a clean one.
    return EXIT_FAILED if failed else EXIT_OK


def _evaluate(program: Program, metric: Metric, data: Dataset, context: RunContext) -> Evaluation:
    """Every example through the program and the metric, with a progress bar on a terminal."""
    with WorkProgress(_stderr(), f"eval {program.name}", len(data), "examples") as progress:
        counted = counting(metric, progress.advance)
        result = evaluate(context, program.ir, data.examples, data.inputs, counted)
        progress.advance(len(data) - progress.done)  # failed examples are not scored
    return result


def _write_eval_report(run: EvalRun, result: Evaluation, target: str) -> None:
    from lmc.report.eval_page import eval_page
    from lmc.report.render import render_page, write_page

    written = write_page(target, render_page("eval.html.j2", eval_page(run, result)))
    _stderr().print(f"wrote {written}")


def _result_lines(data: Dataset, result: Evaluation) -> list[dict[str, Any]]:
    lines = []
    for index, (example, score, prediction, failure) in enumerate(
        zip(data.examples, result.scores, result.predictions, result.errors, strict=True)
    ):
        line: dict[str, Any] = {"record": index + 1, "score": score, "example": example}
        if prediction is not None:  # kept where only the metric failed on it
            line["prediction"] = prediction
        if failure is not None:
            line["error"] = failure
        lines.append(line)
    return lines


def _report(lines: list[dict[str, Any]], out: str | None) -> None:
    """Per-example results: as JSONL to `out`, else one line each on stdout."""
    if out is None:
        for line in lines:
            print(_result_text(line))
        return
    target = Path(out)
    text = "".join(json_text(line) + "\n" for line in lines)
    try:
        write_atomically(target, text.encode("utf-8"))
    except OSError as error:
        raise UsageError(f"{target}: cannot write it ({error.strerror})") from None
    _stderr().print(f"wrote {target}")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


def resolve_metric(spec: str | None, program: Program) -> Metric:
    """`--metric`, else the artifact's builtin metric, else the program's `.lmp` declaration.

    Raises an input error when there is none, it cannot be found, or a builtin metric reads a
    field the program does not output.
    """
    if spec is not None:  # `--metric ""` is a mistake, not a way to ask for the default
        metric = parse_metric(spec)
    elif program.compiled is not None and program.compiled.metric is not None:
        metric = metric_from_json(program.compiled.metric)
    elif program.metric is not None:
        metric = builtin(program.metric.name, program.metric.field)
    else:
        raise UsageError("no metric: pass --metric NAME(FIELD)")
    outputs = [f.name for f in program.outputs]
    if metric.field is not None and metric.field not in outputs:
        raise UsageError(
            f"metric {metric.label}: '{metric.field}' is not an output of program "
            f"{program.name}; expected one of {', '.join(outputs)}"
        )
    return metric


def metric_from_json(data: Mapping[str, Any]) -> Metric:
    """The metric an artifact records (`Metric.to_json()`), where it is a builtin over a field.

    A Python metric is the one thing in an artifact that is not part of its program: an
    artifact runs its program's functions because running it means running that code, but
    scoring with the artifact's metric would run code the user never asked for. It is named, and
    runs when the user passes it with `--metric`."""
    name, field = data.get("name"), data.get("field")
    if not isinstance(name, str) or not (field is None or isinstance(field, str)):
        raise MetricError(f"the artifact's metric is not NAME(FIELD) or a function: {dict(data)}")
    if field is not None:
        return builtin(name, field)
    if ":" not in name:
        raise MetricError(
            f"the artifact was compiled with the Python metric {name}, defined where lmc cannot "
            "import it by name (a script, or inside a function); pass --metric "
            "package.module:function"
        )
    raise MetricError(
        f"the artifact was compiled with the Python metric {name}; lmc runs no code an artifact "
        f"names outside its program, so pass it to score with it: --metric {name}"
    )


def _result_text(line: Mapping[str, Any]) -> str:
    head = f"record {line['record']}: {line['score']:.3f}"
    if "error" in line:
        return f"{head}  error: {printable(str(line['error']))}"
    return f"{head}  {json_text(line['prediction'])}"
