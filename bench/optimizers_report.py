"""Issue 16's table: every task `bench/optimizers.py` saved, with 95% intervals, in one page.

    .venv/bin/python bench/optimizers_report.py    # or: bench/optimizers.py --report

Intervals are percentile bootstraps over the test examples (10,000 resamples, seeded); the
difference between lmc and DSPy's best is paired (both scored on the same examples), so it is
much tighter than the two intervals side by side suggest.
"""

from __future__ import annotations

import datetime
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
DSPY_PYTHON = BENCH / ".venv-dspy" / "bin" / "python"
RESAMPLES = 10_000
ADAPTER_NAMES = {"chat": "ChatAdapter", "json": "JSONAdapter"}
DSPY_NAMES = {"rs": "DSPy BootstrapFewShotWithRandomSearch", "mipro": "DSPy MIPROv2 light"}


def interval(scores: list[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of `scores`."""
    if not scores:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(RESAMPLES))
    return means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]


def paired(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Mean difference ours - theirs on the same examples, with its 95% bootstrap interval."""
    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    low, high = interval(differences)
    return sum(differences) / len(differences), low, high


def _metric(score: dict[str, Any]) -> str:
    low, high = interval(score["scores"])
    return f"{score['metric']:.3f} [{low:.3f}, {high:.3f}]"


def _rows(task: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any] | None]]:
    """(system, prompt format, test score, compile figures or None) per system run on a task."""
    lmc, dspy = task["lmc"], task["dspy"]
    adapter = ADAPTER_NAMES[dspy["adapter"]]
    rows = [
        ("lmc zero-shot", "json schema", lmc["zero_shot"], None),
        ("DSPy zero-shot", adapter, dspy["zero_shot"], None),
    ]
    for name, found in dspy.get("optimizers", {}).items():
        rows.append((DSPY_NAMES[name], adapter, found["test"], found))
    if "compile" in lmc:
        budget = lmc["compile"]["budget_calls"]
        rows.append((f"lmc default compile (budget {budget})", "json schema", *_compiled(lmc)))
    return rows


def _compiled(lmc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return lmc["compile"]["test"], lmc["compile"]


def task_section(task: dict[str, Any]) -> list[str]:
    sizes = task["sizes"]
    lines = [
        f"## {task['task']} on {task['model']}",
        "",
        f"`{task['command']}` ({_minutes(task)}lmc commit {task['commit']}, "
        f"{task['date']}): {sizes['train']} train, {sizes['dev']} dev, {sizes['test']} test "
        "records (the first of each split of shared/data).",
        "",
        "| system | prompt format | test metric [95% CI] | compile LM calls | compile tokens "
        "| compile wall, min |",
        "|---|---|---|---:|---:|---:|",
    ]
    for system, layout, score, compiled in _rows(task):
        costs = (
            f"{compiled['calls']} | {compiled['tokens']:,} | {compiled['wall_s'] / 60:.1f}"
            if compiled
            else "- | - | -"
        )
        lines.append(f"| {system} | {layout} | {_metric(score)} | {costs} |")
    verdict = _verdict(task)
    if verdict:
        lines += ["", verdict["text"]]
    if "compile" in task["lmc"]:
        lines += ["", "lmc's passes (dev metric before -> after, calls, paired dev gain):", ""]
        for record in task["lmc"]["compile"]["passes"]:
            gain = record.get("gain")
            held = f", gain {gain[0]:+.3f} [{gain[1]:+.3f}, {gain[2]:+.3f}]" if gain else ""
            lines.append(
                f"- `{record['name']}`: {record['metric_before']:.3f} -> "
                f"{record['metric_after']:.3f}, {record['calls']} calls{held}"
            )
    return lines


def _minutes(task: dict[str, Any]) -> str:
    return f"{task['minutes']:.0f} min, " if task.get("minutes") is not None else ""


def _verdict(task: dict[str, Any]) -> dict[str, Any] | None:
    """How lmc's compiled program stands against DSPy's best compiled one on test."""
    optimizers = task["dspy"].get("optimizers", {})
    if "compile" not in task["lmc"] or not optimizers:
        return None
    ours = task["lmc"]["compile"]
    best_name, best = max(optimizers.items(), key=lambda item: item[1]["test"]["metric"])
    mean, low, high = paired(ours["test"]["scores"], best["test"]["scores"])
    calls = ours["calls"] / optimizers["rs"]["calls"] if "rs" in optimizers else None
    met = ours["test"]["metric"] >= best["test"]["metric"] and calls is not None and calls <= 0.5
    text = (
        f"lmc - {DSPY_NAMES[best_name]} (DSPy's best here) on test, paired: {mean:+.3f} "
        f"[{low:+.3f}, {high:+.3f}]; lmc's compile calls are "
        f"{calls:.2f}x random search's. Bar (test metric at least DSPy's best, at most half "
        f"its calls): {'met' if met else 'not met'}."
    )
    return {
        "best": best_name,
        "mean": mean,
        "low": low,
        "high": high,
        "calls": calls,
        "met": met,
        "text": text,
    }


def summary(tasks: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| task | model | test n | lmc compiled | DSPy's best compiled | lmc - best, paired "
        "[95% CI] | lmc calls / RS calls | bar |",
        "|---|---|---:|---|---|---|---:|---|",
    ]
    for task in tasks:
        verdict = _verdict(task)
        if verdict is None:
            continue
        best = task["dspy"]["optimizers"][verdict["best"]]["test"]
        lines.append(
            f"| {task['task']} | {task['model']} | {task['sizes']['test']} "
            f"| {_metric(task['lmc']['compile']['test'])} "
            f"| {_metric(best)} ({DSPY_NAMES[verdict['best']].removeprefix('DSPy ')}) "
            f"| {verdict['mean']:+.3f} [{verdict['low']:+.3f}, {verdict['high']:+.3f}] "
            f"| {verdict['calls']:.2f}x | {'met' if verdict['met'] else 'not met'} |"
        )
    return lines


def plot(tasks: list[dict[str, Any]], path: Path) -> bool:
    """Test metric (95% CI) against compile calls per system and task, drawn by the DSPy venv's
    matplotlib so the project venv gains nothing."""
    points = {
        task["task"]: [
            [system, _calls(compiled), score["metric"], *interval(score["scores"])]
            for system, _, score, compiled in _rows(task)
        ]
        for task in tasks
    }
    if not DSPY_PYTHON.exists():
        return False
    script = BENCH / "plot_optimizers.py"
    done = subprocess.run(
        [str(DSPY_PYTHON), str(script), str(path)], input=json.dumps(points), text=True
    )
    return done.returncode == 0


def _calls(compiled: dict[str, Any] | None) -> int:
    return compiled["calls"] if compiled else 0


def write_report(saved: Path, results: Path) -> Path:
    """`<date>-optimizers.md` (and `.png`) in `results` from every task saved in `saved`."""
    tasks = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(saved.glob("*.json"))
        # a task's figures, not a side's saved phases, the programs it compiled (kept for their
        # test runs) or the options they were run with
        if not path.name.endswith((".partial.json", ".program.json", ".options.json"))
    ]
    stem = results / f"{datetime.date.today().isoformat()}-optimizers"
    lines = [
        "# lmc's default compile against DSPy's optimizers",
        "",
        "Issue 16's benchmark (`bench/optimizers.py`): per task, lmc's default compile with a "
        "budget of half the LM calls DSPy's `BootstrapFewShotWithRandomSearch` spent, beside "
        'that optimizer and `MIPROv2(auto="light")`, on one llama-cpp-python server (n_ctx '
        "8192, 2 threads), temperature 0, no cache, 4 requests in flight per side. Metrics are "
        "the same code on both sides (`bench/common.py`). Intervals: 95% percentile bootstrap "
        "over test examples; the lmc - DSPy difference is paired.",
        "",
        *summary(tasks),
        "",
    ]
    if plot(tasks, stem.with_suffix(".png")):
        lines += [f"![test metric against compile calls]({stem.with_suffix('.png').name})", ""]
    for task in tasks:
        lines += [*task_section(task), ""]
    notes = saved / "notes.md"  # what the figures show and what was tried, written by hand
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8")]
    report = stem.with_suffix(".md")
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


if __name__ == "__main__":
    here = Path(__file__).resolve().parent / "results"
    print(write_report(here / "optimizers", here), file=sys.stderr)
