"""Per-call framework overhead with an instant fake LM, beside DSPy's in the same run; and the
embedded model's calls per second.

    .venv/bin/python bench/overhead.py                      # lmc alone
    .venv/bin/python bench/overhead.py --dspy               # lmc, DSPy and the ratio
    .venv/bin/python bench/overhead.py --dspy --dspy-python /work/main/bench/.venv-dspy/bin/python
    .venv/bin/python bench/overhead.py --local-calls 10     # and the embedded model

lmc's figure is `overhead_us` of `bench/lmc_side.py` (a one-step `predict` program run by
`executor.run` on `FakeLM`, cache off); DSPy's is `overhead_us` of `bench/dspy_side.py`
(`dspy.Predict` on `DummyLM`), run in DSPy's own venv as a subprocess (`--dspy-python`, else
`$LMC_BENCH_DSPY_PYTHON`, else `bench/.venv-dspy/bin/python`). Timings on a busy machine are
noisy, so each side's figure is the best of `--repeat` rounds of `--calls` calls, and lmc's
rounds come both before and after DSPy's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import QA_PROGRAM
from lmc_side import overhead_us

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime import executor

BENCH = Path(__file__).resolve().parent


def dataset_run_us(calls: int) -> float:
    """Microseconds per record of a streamed dataset run (`executor.run_records`) on the fake LM."""
    program = lmc.loads(QA_PROGRAM)
    context = lmc.context(FakeLM(lambda request: '{"answer": "Paris"}'), cache=False)

    async def stream() -> None:
        records = ({"question": f"question {i}"} for i in range(calls))
        async for _ in executor.run_records(context, program.ir, records):
            pass

    started = time.perf_counter()
    asyncio.run(stream())
    return (time.perf_counter() - started) / calls * 1e6


def dspy_overhead_us(python: str, calls: int, repeat: int) -> float:
    """DSPy's figure, from `bench/dspy_side.py` run by DSPy's own interpreter."""
    config = {"tasks": [], "overhead_calls": calls, "overhead_repeats": repeat}
    done = subprocess.run(
        [python, str(BENCH / "dspy_side.py")],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        check=True,
    )
    figure: float = json.loads(done.stdout)["overhead_us"]
    return figure


def local_calls_per_second(calls: int) -> dict[str, float]:
    program = lmc.loads(QA_PROGRAM)
    context = lmc.context("local", cache=False)
    executor.run(context, program.ir, {"question": "warm up"})
    started = time.perf_counter()
    for i in range(calls):
        executor.run(context, program.ir, {"question": f"What is {i} plus {i}?"})
    elapsed = time.perf_counter() - started
    total = context.stats.total()
    return {
        "local_calls_per_s": calls / elapsed,
        "local_completion_tokens_per_call": total.completion_tokens / (calls + 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each side's best counts")
    parser.add_argument("--dspy", action="store_true", help="also measure DSPy's side")
    parser.add_argument(
        "--dspy-python",
        default=os.environ.get("LMC_BENCH_DSPY_PYTHON", str(BENCH / ".venv-dspy/bin/python")),
        help="the interpreter of DSPy's venv",
    )
    parser.add_argument("--local-calls", type=int, default=0, help="calls on the embedded model")
    args = parser.parse_args()
    rounds = max(1, args.repeat)
    lmc_rounds = [overhead_us(args.calls) for _ in range(rounds)]
    figures: dict[str, float] = {}
    if args.dspy:
        figures["dspy_overhead_us"] = dspy_overhead_us(args.dspy_python, args.calls, rounds)
        lmc_rounds += [overhead_us(args.calls) for _ in range(rounds)]
    figures["lmc_overhead_us"] = min(lmc_rounds)
    if args.dspy:
        figures["ratio"] = figures["lmc_overhead_us"] / figures["dspy_overhead_us"]
    figures["lmc_dataset_run_us_per_record"] = min(dataset_run_us(args.calls) for _ in range(3))
    if args.local_calls:
        figures |= local_calls_per_second(args.local_calls)
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
