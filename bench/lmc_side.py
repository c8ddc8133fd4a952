"""The lmc side of the DSPy comparison: run by `bench/run.py` with the project venv's python.

    .venv/bin/python bench/lmc_side.py < config.json > result.json

The config (JSON on stdin) names the server (`api_base`), `tasks`, `limit`, `compile`,
`concurrency` and `overhead_calls`; the result (JSON on stdout) has the figures; progress goes to
stderr. `run_side(config, lm=FakeLM(...))` runs the same code in-process on a fake LM (the smoke
test does).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import METRICS, load_split, peak_rss_mb, say

import lmc
from lmc.backends.base import LMClient
from lmc.compiler import as_dataset, as_metric
from lmc.runtime import executor
from lmc.runtime.context import RunContext
from lmc.runtime.evaluate import evaluate

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
OVERHEAD_PROGRAM = """
signature AnswerQuestion {
    \"\"\"Answer the question.\"\"\"
    input  question: str
    output answer:   str
}

program QA(question: str) -> (answer: str) {
    gen = predict AnswerQuestion(question=question)
    return answer = gen.answer
}
"""
# bootstrap-demos with 4 seeded demo sets scored on dev: DSPy's random search with
# num_candidate_programs=2 also scores 4 demo-bearing programs (labeled-only, unshuffled
# bootstrap, 2 random) beside the zero-shot one.
COMPILE_PIPELINE = "bootstrap-demos{max_demos=4,candidates=4}"


def overhead_us(calls: int) -> float:
    """Microseconds per one-step program run on an instant fake LM."""
    from lmc.backends.clients.fake import FakeLM

    program = lmc.loads(OVERHEAD_PROGRAM)
    context = lmc.configure(FakeLM(lambda request: '{"answer": "Paris"}'), cache=False)
    executor.run(context, program.ir, {"question": "warm up"})
    started = time.perf_counter()
    for i in range(calls):
        executor.run(context, program.ir, {"question": f"question {i}"})
    return (time.perf_counter() - started) / calls * 1e6


_SERVED: list[LMClient] = []


def served_lm(api_base: str) -> LMClient:
    """One litellm client for the whole side, warmed up by one call on its own.

    The client learns which `response_format` the server takes by trying OpenAI's form first;
    when several first calls probe at once, all but one fail instead of retrying (a race in
    `backends/clients/hosted.py`), so the first call here is made alone.
    """
    if not _SERVED:
        from lmc.backends.clients import open_lm

        client = open_lm("openai/bench", api_base)
        warm_up = lmc.configure(client, cache=False)
        executor.run(warm_up, lmc.loads(OVERHEAD_PROGRAM).ir, {"question": "warm up"})
        _SERVED.append(client)
    return _SERVED[0]


def _context(config: dict[str, Any], lm: LMClient | None) -> RunContext:
    client = lm if lm is not None else served_lm(config["api_base"])
    return lmc.configure(client, cache=False, concurrency=int(config.get("concurrency", 4)))


def _score(
    context: RunContext, program: lmc.Program, task: str, records: list[dict[str, str]]
) -> dict[str, Any]:
    """Run the program over `records` once, scored by the shared metric, with the run's costs."""
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
        "n": len(records),
        "failed_examples": sum(error is not None for error in result.errors),
        # replies that did not fit on the first try (a repair call followed), of first tries
        "format_failures": total.repairs,
        "format_failure_rate": total.repairs / first_tries if first_tries else 0.0,
        "calls": total.calls,
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        "wall_s": wall,
        "examples_per_s": len(records) / wall if wall else 0.0,
    }


def run_task(config: dict[str, Any], task: str, lm: LMClient | None = None) -> dict[str, Any]:
    program = lmc.load(str(TASKS_DIR / f"{task}.lmp"))
    limit = int(config["limit"])
    data_dir = Path(config["data"]) if config.get("data") else None
    split = (lambda name: load_split(task, name, limit, data_dir)) if data_dir else None

    def records(name: str) -> list[dict[str, str]]:
        return split(name) if split else load_split(task, name, limit)

    dev = records("dev")
    say(f"[lmc] {task}: zero-shot on {len(dev)} dev examples")
    row: dict[str, Any] = {"zero_shot": _score(_context(config, lm), program, task, dev)}
    say(f"[lmc] {task}: zero-shot {row['zero_shot']['metric']:.3f}")
    if config.get("compile"):
        train = records("train")
        context = _context(config, lm)
        say(f"[lmc] {task}: compiling ({COMPILE_PIPELINE}) on {len(train)} train / {len(dev)} dev")
        started = time.perf_counter()
        compiled = lmc.compile(
            program,
            trainset=train,
            devset=dev,
            metric=METRICS[task],
            pipeline=COMPILE_PIPELINE,
            lm=context,
        )
        wall = time.perf_counter() - started
        total = context.stats.total()
        row["compile"] = {
            "calls": total.calls,
            "tokens": total.prompt_tokens + total.completion_tokens,
            "wall_s": wall,
            "dev": _score(_context(config, lm), compiled, task, dev),
            "test": _score(_context(config, lm), compiled, task, records("test")),
        }
        say(f"[lmc] {task}: compiled dev {row['compile']['dev']['metric']:.3f}")
    return row


def run_side(config: dict[str, Any], lm: LMClient | None = None) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "x")  # litellm wants one; the local server ignores it
    result: dict[str, Any] = {"version": lmc.__dict__.get("__version__", "0.1.0")}
    calls = int(config.get("overhead_calls", 1000))
    if calls:
        say(f"[lmc] overhead: {calls} calls on FakeLM")
        result["overhead_us"] = overhead_us(calls)
    result["tasks"] = {task: run_task(config, task, lm) for task in config["tasks"]}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    config = json.load(sys.stdin)
    json.dump(run_side(config), sys.stdout)


if __name__ == "__main__":
    main()
