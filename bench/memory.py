"""Peak memory of a dataset run (`lmc run --data IN --out OUT`) on an instant fake LM, at two
dataset sizes: it must not grow with the number of records.

    .venv/bin/python bench/memory.py                        # 1,000 and 10,000 records
    .venv/bin/python bench/memory.py --records 1000 10000 100000
    .venv/bin/python bench/memory.py --dspy-python /work/main/bench/.venv-dspy/bin/python

Each size runs in a fresh process, which calls `lmc.cli.main.main(["run", ...])` (the code path
of the command line) with every model resolved to `InstantLM`, a client that answers at once and
keeps nothing. A record is a question of about 600 characters. The figures: the process's
resident memory before the run (the data written, before lmc's modules are imported), its peak
during the run (`VmHWM`), and the difference.

With `--dspy-python` (or `$LMC_BENCH_DSPY_PYTHON`), DSPy's nearest equivalent runs too, in its
own venv: `dspy.Evaluate` of `dspy.Predict("question -> answer")` over the same records as
`dspy.Example`s on `DummyLM`, 4 threads (DSPy has no streamed dataset run; its devset is a list).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# stdlib only: lmc is not imported before the start figure
from common import QA_PROGRAM, peak_rss_mb


class InstantLM:
    """An LM client that answers every request at once, remembering nothing of it."""

    identity = "instant"
    constrains = False
    enforces_schema = False
    max_concurrency = 64

    def chat_template(self) -> str | None:
        return None

    def complete(self, request: Any) -> Any:
        from lmc.backends.base import LMResponse

        return LMResponse(text='{"answer": "Paris"}', prompt_tokens=100, completion_tokens=5)


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(records: int, folder: Path) -> dict[str, float]:
    """One dataset run of `records` records, in this process; its memory figures."""
    before = current_rss_mb()
    from lmc.cli import main as cli

    program, data, out = folder / "qa.lmp", folder / "in.jsonl", folder / "out.jsonl"
    program.write_text(QA_PROGRAM, encoding="utf-8")
    with data.open("w", encoding="utf-8") as lines:
        for i in range(records):
            question = f"Question {i}: " + "what is the capital of France, again? " * 16
            lines.write(json.dumps({"question": question}) + "\n")
    lm = InstantLM()
    import lmc.runtime.context

    lmc.runtime.context.open_lm = lambda model, api_base=None, **limits: lm  # type: ignore[assignment]
    argv = ["run", str(program), "--data", str(data), "--out", str(out), "--no-cache"]
    code = cli.main(argv)
    peak = peak_rss_mb()
    written = sum(1 for _ in out.open(encoding="utf-8"))
    if code != 0 or written != records:
        raise SystemExit(f"the run failed: exit {code}, {written} of {records} lines written")
    return {
        "records": records,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "run_mb": peak - before,
    }


def dspy_child(records: int) -> dict[str, float]:
    """DSPy's figures for the same records, in this process (DSPy's interpreter)."""
    before = current_rss_mb()
    import dspy
    from dspy.utils import DummyLM

    examples = [
        dspy.Example(
            question=f"Question {i}: " + "what is the capital of France, again? " * 16,
            answer="Paris",
        ).with_inputs("question")
        for i in range(records)
    ]
    lm = DummyLM([{"answer": "Paris"}] * (records + 1))
    with dspy.context(lm=lm):
        evaluate = dspy.Evaluate(devset=examples, num_threads=4, display_progress=False)
        evaluate(dspy.Predict("question -> answer"), metric=lambda e, p, t=None: True)
    peak = peak_rss_mb()
    return {
        "records": records,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "run_mb": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--dspy-python", default=os.environ.get("LMC_BENCH_DSPY_PYTHON"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dspy-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(child(args.child, Path(folder))))
        return
    if args.dspy_child is not None:
        print(json.dumps(dspy_child(args.dspy_child)))
        return
    sides = [("lmc", sys.executable, "--child")]
    if args.dspy_python:
        sides.append(("dspy", args.dspy_python, "--dspy-child"))
    for side, python, flag in sides:
        for records in args.records:
            done = subprocess.run(
                [python, __file__, flag, str(records)], capture_output=True, text=True, check=True
            )
            figures = json.loads(done.stdout.splitlines()[-1])
            print(json.dumps({"side": side} | {k: round(v, 1) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
