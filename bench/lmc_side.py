"""The lmc side of the DSPy comparison: run by `bench/run.py` with the project venv's python.

    .venv/bin/python bench/lmc_side.py < config.json > result.json

The config (JSON on stdin) names the server (`api_base`), `tasks`, `limit`, `compile`,
`concurrency` and `overhead_calls`, and `lmc_model`: `served` (the server, as DSPy) or `embedded`
(lmc's own model in this process, what `lmc run` uses with no `--model`); the result (JSON on
stdout) has the figures; progress goes to stderr. `run_side(config, lm=FakeLM(...))` runs the
same code in-process on a fake LM (the smoke test does).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DATA,
    METRICS,
    QA_PROGRAM,
    compiles,
    in_phase,
    load_split,
    peak_rss_mb,
    resumed,
    say,
    with_server_work,
)

import lmc
from lmc.backends.base import LMClient
from lmc.builder.optimize import as_dataset, as_metric
from lmc.compiler.session import BudgetTooSmall, compile_program
from lmc.runtime import executor
from lmc.runtime.context import RunContext
from lmc.runtime.evaluate import evaluate

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def pipeline_item(name: str, options: dict[str, Any]) -> str:
    """One pass as a pipeline names it, `bootstrap-demos{candidates=2,...}`."""
    written = ",".join(f"{key}={value}" for key, value in options.items())
    return f"{name}{{{written}}}" if written else name


def overhead_us(calls: int) -> float:
    """Microseconds per one-step program run on an instant fake LM."""
    from lmc.backends.clients.fake import FakeLM

    program = lmc.loads(QA_PROGRAM)
    context = lmc.context(FakeLM(lambda request: '{"answer": "Paris"}'), cache=False)
    executor.run(context, program.ir, {"question": "warm up"})
    started = time.perf_counter()
    for i in range(calls):
        executor.run(context, program.ir, {"question": f"question {i}"})
    return (time.perf_counter() - started) / calls * 1e6


_SERVED: dict[str, LMClient] = {}


def served_lm(api_base: str) -> LMClient:
    """One client of the served model for the whole side (lmc's direct one: `openai/NAME` with an
    api base never imports litellm), warmed up by one call on its own.

    The client learns which `response_format` the server takes by trying OpenAI's form first
    (first calls that probe at once each try the next form; tests/backends/test_faults.py), so
    the warm-up call is where it learns it, before anything is timed. One client per api
    base: each phase of a replayed run has its own (`common.in_phase`), so a phase's replayed
    calls include its client's warm-up call.
    """
    if api_base not in _SERVED:
        from lmc.backends.clients import open_lm

        # Half an hour a try, not the 120 s default: with 4 calls in flight on a one-slot CPU
        # server, a call queues behind three others, and a held chain of thought may take 1,433
        # tokens. A try that timed out would be retried and its work done again. At ten minutes,
        # two GSM8K calls on Qwen 1.5B timed out behind a repair call of 2,174 prompt tokens.
        client = open_lm("openai/bench", api_base, timeout=1800)
        warm_up = lmc.context(client, cache=False)
        executor.run(warm_up, lmc.loads(QA_PROGRAM).ir, {"question": "warm up"})
        _SERVED[api_base] = client
    return _SERVED[api_base]


_EMBEDDED: list[LMClient] = []


def embedded_lm() -> LMClient:
    """lmc's embedded model, loaded once in this process as `lmc run` loads it, by one call
    made before any run is timed (as the server's model is loaded before either side runs)."""
    if not _EMBEDDED:
        from lmc.backends.clients import DEFAULT_MODEL, open_lm

        client = open_lm(DEFAULT_MODEL)
        warm_up = lmc.context(client, cache=False)
        executor.run(warm_up, lmc.loads(QA_PROGRAM).ir, {"question": "warm up"})
        _EMBEDDED.append(client)
    return _EMBEDDED[0]


def _context(config: dict[str, Any], lm: LMClient | None) -> RunContext:
    if lm is not None:
        client = lm
    elif config.get("lmc_model") == "embedded":
        client = embedded_lm()
    else:
        client = served_lm(config["api_base"])
    return lmc.context(client, cache=False, concurrency=int(config.get("concurrency", 4)))


def _score(
    config: dict[str, Any],
    lm: LMClient | None,
    program: lmc.Program,
    task: str,
    records: list[dict[str, str]],
) -> dict[str, Any]:
    """Run the program over `records` once, scored by the shared metric, with the run's costs
    (and what the model server evaluated, when its log is named)."""
    return with_server_work(
        config, lambda: _run_scored(_context(config, lm), program, task, records)
    )


def _run_scored(
    context: RunContext, program: lmc.Program, task: str, records: list[dict[str, str]]
) -> dict[str, Any]:
    data = as_dataset(records, program, task)
    started = time.perf_counter()
    result = evaluate(
        context, program.ir, data.examples, data.inputs, as_metric(METRICS[task], program)
    )
    wall = time.perf_counter() - started
    total = context.stats.total()
    first_tries = total.calls - total.repairs
    return {
        "metric": result.score,
        "scores": list(result.scores),
        "n": len(records),
        "failed_examples": sum(error is not None for error in result.errors),
        # replies that did not fit on the first try (a repair call followed), of first tries
        "format_failures": total.repairs,
        "format_failure_rate": total.repairs / first_tries if first_tries else 0.0,
        "calls": total.calls,
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        # Of the model's prompt tokens, those it reused from an earlier prompt's prefix: known
        # on the embedded model and servers that report it, else None (not zero).
        "reused_prompt_tokens": total.reused_prompt_tokens if total.reuse_unknown == 0 else None,
        "evaluated_prompt_tokens": total.evaluated_prompt_tokens,
        "wall_s": wall,
        "examples_per_s": len(records) / wall if wall else 0.0,
    }


def run_task(config: dict[str, Any], task: str, lm: LMClient | None = None) -> dict[str, Any]:
    program = lmc.load(str(TASKS_DIR / f"{task}.lmp"))
    limit = int(config["limit"])
    data = Path(config["data"]) if config.get("data") else DATA

    def records(split: str) -> list[dict[str, str]]:
        return load_split(task, split, limit, data)

    dev = records("dev")
    say(f"[lmc] {task}: zero-shot on {len(dev)} dev examples")
    row: dict[str, Any] = {"zero_shot": _score(config, lm, program, task, dev)}
    say(f"[lmc] {task}: zero-shot {row['zero_shot']['metric']:.3f}")
    if compiles(config, task):
        train = records("train")
        budget = config.get("compile_budget", {}).get(task)
        compiled = compile_within(config, lm, task, program, train, dev, budget)
        if compiled is None:
            return row
        row["compile"] = compiled.figures | {
            "dev": _score(config, lm, compiled.program, task, dev),
            "test": _score(config, lm, compiled.program, task, records("test")),
        }
        say(f"[lmc] {task}: compiled dev {row['compile']['dev']['metric']:.3f}")
    return row


@dataclass
class Compiled:
    program: lmc.Program
    figures: dict[str, Any]  # the pipeline it ran, its passes' log, calls, tokens, wall time


def compile_within(
    config: dict[str, Any],
    lm: LMClient | None,
    task: str,
    program: lmc.Program,
    train: list[dict[str, str]],
    dev: list[dict[str, str]],
    budget: int | None,
) -> Compiled | None:
    """lmc's default compile, no pipeline named, so it fits itself to `budget`
    (passes/budget.py); None when even its leanest form does not fit."""
    say(f"[lmc] {task}: compiling on {len(train)} train, {len(dev)} dev, budget {budget} calls")
    context = _context(config, lm)
    started = time.perf_counter()
    try:
        compiled = compile_program(
            program,
            as_dataset(train, program, "train"),
            as_metric(METRICS[task], program),
            dev=as_dataset(dev, program, "dev"),
            run=context,
            budget_calls=budget,
            say=lambda message: say(f"[lmc] {task}: {message}"),
        )
    except BudgetTooSmall as refused:
        say(f"[lmc] {task}: {refused}; not compiled")
        return None
    wall = time.perf_counter() - started
    total = context.stats.total()
    records = compiled.result.records
    # dev metric after each pass against the calls spent so far: the plot's lmc curve
    spent = total.calls - sum(record.calls for record in records)
    trajectory = [[spent, compiled.result.baseline]]
    for record in records:
        spent += record.calls
        trajectory.append([spent, record.metric_after])
    figures = {
        "pipeline": ",".join(pipeline_item(r.name, r.options) for r in records),
        "passes": [record.to_json() for record in records],
        "trajectory": trajectory,
        "budget_calls": budget,
        "calls": total.calls,
        "tokens": total.prompt_tokens + total.completion_tokens,
        "wall_s": wall,
    }
    return Compiled(compiled.program, resumed(config, figures))


def compare(config: dict[str, Any], lm: LMClient | None = None) -> dict[str, Any]:
    """Issue 16's comparison, lmc's half: zero-shot on test, then the default compile within
    `config["budget"]` calls and its program on test. Finished phases are written to
    `config["partial"]` at once and not run again."""
    task, sizes = config["task"], config["sizes"]
    partial = Path(config["partial"])
    row: dict[str, Any] = (
        json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
    )
    program = lmc.load(str(TASKS_DIR / f"{task}.lmp"))
    data = Path(config["data"]) if config.get("data") else DATA
    test = load_split(task, "test", sizes["test"], data)
    if "zero_shot" not in row:
        say(f"[lmc] {task}: zero-shot on {len(test)} test examples")
        row["zero_shot"] = _score(in_phase(config, "lmc-zero-shot"), lm, program, task, test)
        partial.write_text(json.dumps(row), encoding="utf-8")
    say(f"[lmc] {task}: zero-shot test {row['zero_shot']['metric']:.3f}")
    if "compile" not in row:
        # The compiled program is kept before its test run, which a stop must not cost it.
        kept = partial.with_suffix(".program.json")
        if "compiled" in row and kept.exists():
            compiled = Compiled(lmc.load(kept), row["compiled"])
            say(f"[lmc] {task}: the compiled program saved in {kept.name}")
        else:
            train = load_split(task, "train", sizes["train"], data)
            dev = load_split(task, "dev", sizes["dev"], data)
            found = compile_within(
                in_phase(config, "lmc-compile"), lm, task, program, train, dev, config.get("budget")
            )
            if found is None:
                return row
            compiled = found
            compiled.program.save(kept)
            row["compiled"] = compiled.figures
            partial.write_text(json.dumps(row), encoding="utf-8")
        row["compile"] = compiled.figures | {
            "test": _score(in_phase(config, "lmc-test"), lm, compiled.program, task, test)
        }
        partial.write_text(json.dumps(row), encoding="utf-8")
    say(f"[lmc] {task}: compiled test {row['compile']['test']['metric']:.3f}")
    return row


def run_side(config: dict[str, Any], lm: LMClient | None = None) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "x")  # the local server ignores it
    result: dict[str, Any] = {"version": lmc.__dict__.get("__version__", "0.1.0")}
    calls = int(config.get("overhead_calls", 1000))
    if calls:
        say(f"[lmc] overhead: {calls} calls on FakeLM")
        result["overhead_us"] = overhead_us(calls)
    if config.get("experiment") == "optimizers":
        result["tasks"] = {config["task"]: compare(config, lm)}
    else:
        result["tasks"] = {task: run_task(config, task, lm) for task in config["tasks"]}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    config = json.load(sys.stdin)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result
        result = run_side(config)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
