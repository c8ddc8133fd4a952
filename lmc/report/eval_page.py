"""The evaluation report's content: per-example scores, the confusion table of a `literal`
output, and the slowest and costliest examples, from an `Evaluation` already made."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lmc.compiler.program import Program
from lmc.report.graph import program_svg
from lmc.runtime.data import Dataset
from lmc.runtime.evaluate import Evaluation, ExampleCost
from lmc.runtime.metrics import Metric
from lmc.types import OneOf

TOP = 5  # how many of the slowest and of the costliest examples are listed
FAILED = "(failed)"  # the confusion table's column for runs that gave no prediction


@dataclass(frozen=True)
class EvalRun:
    """What was evaluated and how: everything the page names besides the results."""

    program: Program
    metric: Metric
    data: Dataset
    data_path: str
    model: str
    backend: str
    command: str
    seconds: float


def eval_page(run: EvalRun, result: Evaluation) -> dict[str, Any]:
    examples = _examples(run, result)
    return {
        "title": f"lmc eval report: {run.program.name}",
        "source": f"{run.data_path}, {len(run.data)} examples",
        "metric": run.metric.label,
        "score": f"{result.score:.3f}",
        "failed": sum(1 for e in result.errors if e is not None),
        "facts": [
            ("program", run.program.name),
            ("model", run.model),
            ("backend", run.backend),
            ("metric", run.metric.label),
            ("data sha256", run.data.sha256),
            ("command", run.command),
            ("wall time", f"{run.seconds:.1f}s"),
        ],
        "graph": program_svg(run.program.ir),
        "examples": examples,
        "confusion": _confusion(run, result),
        "slowest": sorted(examples, key=lambda e: -e["seconds_value"])[:TOP],
        "costliest": sorted(examples, key=lambda e: -e["tokens"])[:TOP],
    }


def _examples(run: EvalRun, result: Evaluation) -> list[dict[str, Any]]:
    costs = result.costs or [ExampleCost() for _ in result.scores]
    rows = []
    for index, (example, inputs, score, predicted, error, cost) in enumerate(
        zip(
            run.data.examples,
            run.data.inputs,
            result.scores,
            result.predictions,
            result.errors,
            costs,
            strict=True,
        )
    ):
        wanted = [run.metric.field] if run.metric.field else [k for k in example if k not in inputs]
        rows.append(
            {
                "record": index + 1,
                "score": f"{score:.3f}",
                "right": score >= 1.0,
                "inputs": _shown({k: example[k] for k in inputs if k in example}),
                "expected": _shown({k: example[k] for k in wanted if k in example}),
                "predicted": _shown(predicted) if predicted is not None else None,
                "error": error,
                "seconds": f"{cost.seconds:.2f}",
                "seconds_value": cost.seconds,
                "calls": cost.calls,
                "cached": cost.cached,
                "tokens": cost.tokens,
            }
        )
    return rows


def _confusion(run: EvalRun, result: Evaluation) -> dict[str, Any] | None:
    """Expected label against predicted label, counted, for a metric over a `literal` output;
    None for any other output (a confusion table of free text says nothing)."""
    field = run.metric.field
    kind = next((f.type for f in run.program.outputs if f.name == field), None)
    if field is None or not isinstance(kind, OneOf):
        return None
    pairs = Counter(
        (str(example.get(field)), FAILED if predicted is None else str(predicted.get(field)))
        for example, predicted in zip(run.data.examples, result.predictions, strict=True)
    )
    seen = {label for pair in pairs for label in pair}
    labels = [*kind.choices, *sorted(seen - set(kind.choices) - {FAILED})]
    columns = [*labels, FAILED] if FAILED in seen else labels
    return {
        "field": field,
        "labels": labels,
        "columns": columns,
        "counts": [[pairs[(expected, predicted)] for predicted in columns] for expected in labels],
    }


def _shown(values: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
