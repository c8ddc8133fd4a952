"""Start-up time of the command line and of `import lmc`, beside `import dspy`, on this machine.

    .venv/bin/python bench/startup.py [--runs 7] [--dspy-python PATH] [--no-write]

Each command runs `--runs` times in a fresh process, the commands taking turns so that a busy
moment of the machine falls on all of them alike, after one unmeasured warm-up run each (the
page cache, lmc's grammar cache). The figure is the median wall time of the whole process, as a
shell sees it; ratios are against `python -c "import dspy"` in DSPy's own venv (`bench/.venv-dspy`,
made on first use as `bench/run.py` makes it). Prints a markdown table and writes it to
`bench/results/<date>-startup.md`. lmc's caches go to a temporary `LMC_CACHE_DIR`. Not part of CI.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PROJECT_PYTHON = Path(sys.executable)
LMC = PROJECT_PYTHON.parent / "lmc"
PROGRAM = "examples/rag/program.lmp"


class Row(NamedTuple):
    label: str
    argv: list[str]
    # The goal: at most this fraction of `import dspy`'s time, or at most this many seconds.
    ratio_goal: float | None = None
    seconds_goal: float | None = None


def rows(dspy_python: Path) -> list[Row]:
    return [
        Row('python -c "import dspy"', [str(dspy_python), "-c", "import dspy"]),
        Row('python -c "pass" (the interpreter alone)', [str(PROJECT_PYTHON), "-c", "pass"]),
        Row('python -c "import lmc"', [str(PROJECT_PYTHON), "-c", "import lmc"], ratio_goal=0.3),
        Row("lmc --help", [str(LMC), "--help"], ratio_goal=0.1),
        Row(f"lmc check {PROGRAM}", [str(LMC), "check", PROGRAM], seconds_goal=0.25),
        Row(f"lmc fmt {PROGRAM}", [str(LMC), "fmt", PROGRAM]),
    ]


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(table: list[Row], runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="lmc-startup-") as cache:
        env = os.environ | {"LMC_CACHE_DIR": cache}
        for row in table:
            wall_time(row.argv, env)
        times: dict[str, list[float]] = {row.label: [] for row in table}
        for _ in range(runs):
            for row in table:
                times[row.label].append(wall_time(row.argv, env))
    return times


def report(table: list[Row], times: dict[str, list[float]], command: str, machine: str) -> str:
    dspy = statistics.median(times[table[0].label])
    lines = [
        f"# Start-up: lmc beside `import dspy`, {datetime.date.today().isoformat()}",
        "",
        f"`{command}`: wall time of a fresh process, median of {len(times[table[0].label])} "
        f"runs taken in turns, after one warm-up each. {machine}",
        "",
        "| command | median s | min s | / import dspy | goal | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in table:
        median, fastest = statistics.median(times[row.label]), min(times[row.label])
        goal, met = "", ""
        if row.ratio_goal is not None:
            goal, met = f"≤ {row.ratio_goal}x", _yes(median <= row.ratio_goal * dspy)
        if row.seconds_goal is not None:
            goal, met = f"< {row.seconds_goal} s", _yes(median < row.seconds_goal)
        lines.append(
            f"| `{row.label}` | {median:.3f} | {fastest:.3f} | {median / dspy:.2f}x "
            f"| {goal} | {met} |"
        )
    return "\n".join(lines) + "\n"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def machine(dspy_python: Path) -> str:
    """Cores, load, versions and commit: what the figures depend on."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    dspy = subprocess.run(
        [str(dspy_python), "-c", "import dspy; print(dspy.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores, load average {load} before the runs; Python "
        f"{sys.version.split()[0]}; DSPy {dspy}; commit {_commit()}."
    )


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dspy-python", type=Path, help="default: bench/.venv-dspy/bin/python")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    command = f"python bench/startup.py --runs {args.runs}"
    if args.dspy_python is not None:
        command += f" --dspy-python {args.dspy_python}"
    else:
        from run import DSPY_PYTHON, setup_dspy_venv

        setup_dspy_venv()
        args.dspy_python = DSPY_PYTHON
    table = rows(args.dspy_python)
    before = machine(args.dspy_python)
    text = report(table, measure(table, args.runs), command, before)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        target = RESULTS / f"{datetime.date.today().isoformat()}-startup.md"
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
