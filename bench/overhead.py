"""Per-call framework overhead with an instant fake LM, and the embedded model's calls per second.

    .venv/bin/python bench/overhead.py [--calls 1000] [--local-calls 10]

A figure for our own regressions; the side-by-side comparison with DSPy lives beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime import executor

PROGRAM = """
signature AnswerQuestion {
    \"\"\"Answer the question with a short factual answer.\"\"\"
    input  question: str
    output answer:   str "A few words."
}

program QA(question: str) -> (answer: str) {
    gen = predict AnswerQuestion(question=question)
    return answer = gen.answer
}
"""


def fake_overhead(calls: int) -> dict[str, float]:
    program = lmc.loads(PROGRAM)
    context = lmc.context(FakeLM(lambda request: '{"answer": "Paris"}'), cache=False)
    started = time.perf_counter()
    for i in range(calls):
        executor.run(context, program.ir, {"question": f"question {i}"})
    one_by_one = (time.perf_counter() - started) / calls

    async def stream() -> None:
        records = [{"question": f"question {i}"} for i in range(calls)]
        async for _ in executor.run_records(context, program.ir, records):
            pass

    started = time.perf_counter()
    asyncio.run(stream())
    streamed = (time.perf_counter() - started) / calls
    return {"per_call_us_single_runs": one_by_one * 1e6, "per_call_us_dataset_run": streamed * 1e6}


def local_calls_per_second(calls: int) -> dict[str, float]:
    program = lmc.loads(PROGRAM)
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--local-calls", type=int, default=10)
    args = parser.parse_args()
    figures = fake_overhead(args.calls)
    if args.local_calls:
        figures |= local_calls_per_second(args.local_calls)
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
