"""The compile report's content: everything the page shows, read from a compiled program (its
graph and the `CompileInfo` an artifact holds). No LM call, no file read beyond that."""

from __future__ import annotations

import json
from typing import Any

from lmc.compiler.artifact import CompileInfo
from lmc.compiler.program import Program
from lmc.compiler.session import gain_text
from lmc.passes.record import PassRecord
from lmc.report.chart import metric_chart
from lmc.report.graph import program_svg
from lmc.report.prompts import step_cards


def compile_page(program: Program, source: str) -> dict[str, Any]:
    """The template's context for `program`, compiled or not (`source` names where it was
    read from, or what made it)."""
    info = program.compiled or CompileInfo()
    metric = _metric_label(info.metric)
    return {
        "title": f"lmc compile report: {program.name}",
        "program": program.name,
        "source": source,
        "facts": _facts(info, metric),
        "graph": program_svg(program.ir),
        "passes": [_pass_row(record) for record in info.passes],
        "baseline": info.passes[0].metric_before if info.passes else None,
        "final": info.passes[-1].metric_after if info.passes else None,
        "metric": metric,
        "chart": metric_chart(info.passes, metric),
        "candidates_recorded": any(r.candidates for r in info.passes),
        "steps": step_cards(program.ir, info.backend),
        "instructions": _instruction_candidates(info.passes),
        "misses": [_miss_row(miss.to_json()) for miss in info.misses],
        "compiled": program.compiled is not None,
        "lmp": program.to_lmp(),
    }


def _metric_label(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "metric"
    name, field = metric.get("name"), metric.get("field")
    return f"{name}({field})" if field else str(name)


def _facts(info: CompileInfo, metric: str) -> list[tuple[str, str]]:
    """The model, backend, data and command, as (what, value) rows."""
    rows = [
        ("model", info.lm or "not recorded (the default model)"),
        ("backend", info.backend or "not recorded (json)"),
        ("metric", metric),
    ]
    rows += [(f"{name} data sha256", digest) for name, digest in sorted(info.datasets.items())]
    rows.append(("command", info.command or "not recorded (compiled from Python)"))
    rows.append(("compiled", info.created))
    return rows


def _pass_row(record: PassRecord) -> dict[str, Any]:
    options = ", ".join(f"{k}={v}" for k, v in record.options.items())
    return {
        "name": record.name,
        "options": options,
        "before": f"{record.metric_before:.3f}",
        "after": f"{record.metric_after:.3f}",
        "gain": gain_text(record),
        "improved": record.gain is not None and record.gain[1] > 0,
        "calls": record.calls,
        "cached": record.cached,
        "tokens": record.prompt_tokens + record.completion_tokens,
        "seconds": f"{record.seconds:.1f}",
        "calls_per_run": record.calls_per_run,
        "candidates": len(record.candidates),
        "notes": record.notes,
    }


def _instruction_candidates(records: tuple[PassRecord, ...]) -> list[dict[str, Any]]:
    """Every instruction a pass tried, with its dev score and whether it was kept."""
    return [
        {
            "pass": record.name,
            "label": candidate.label,
            "instruction": candidate.detail,
            "score": f"{candidate.score:.3f}",
            "examples": candidate.examples,
            "kept": candidate.kept,
        }
        for record in records
        for candidate in record.candidates
        if candidate.detail is not None
    ]


def _miss_row(miss: dict[str, Any]) -> dict[str, Any]:
    return {
        "record": miss["record"],
        "inputs": _shown(miss["inputs"]),
        "expected": _shown(miss["expected"]),
        "predicted": _shown(miss["predicted"]) if miss["predicted"] is not None else None,
        "error": miss["error"],
        "score": f"{miss['score']:.3f}",
    }


def _shown(values: dict[str, Any]) -> str:
    """Field values as the page prints them: JSON, one field a line."""
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
