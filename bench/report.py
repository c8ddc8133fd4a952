"""The benchmark's report: a table of lmc/DSPy ratios and a plot, from the results JSON.

    .venv/bin/python bench/report.py bench/results/<date>-<model>.json

`bench/run.py` calls `write_report` after a run; run this to draw a saved run again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import DEFAULT_SERVER

from lmc.passes.pipeline import DEFAULT_PIPELINE

BENCH = Path(__file__).resolve().parent
DSPY_PYTHON = BENCH / ".venv-dspy" / "bin" / "python"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(
    lmc: dict[str, Any], dspy: dict[str, Any], cold: dict[str, tuple[float, float]]
) -> list[str]:
    rows: list[tuple[str, float | None, float | None, int]] = [
        (
            "framework overhead per LM call, µs (fake LM, 1,000 calls)",
            lmc.get("overhead_us"),
            dspy.get("overhead_us"),
            1,
        ),
        ("cold start: import, s (best of 3)", cold["lmc"][0], cold["dspy"][0], 3),
        ("memory after import, MB", cold["lmc"][1], cold["dspy"][1], 0),
        ("peak RSS of the side's process, MB", lmc["peak_rss_mb"], dspy["peak_rss_mb"], 0),
    ]
    for task, ours in lmc["tasks"].items():
        theirs = dspy["tasks"][task]
        a, b = ours["zero_shot"], theirs["zero_shot"]
        rows += [
            (f"{task}: zero-shot dev metric (n={a['n']})", a["metric"], b["metric"], 3),
            (
                f"{task}: zero-shot format-failure rate",
                a["format_failure_rate"],
                b["format_failure_rate"],
                3,
            ),
            (
                f"{task}: zero-shot examples with no prediction",
                a["failed_examples"],
                b["failed_examples"],
                0,
            ),
            (f"{task}: zero-shot LM calls", a["calls"], b["calls"], 0),
            (
                f"{task}: zero-shot tokens (prompt + completion)",
                a["prompt_tokens"] + a["completion_tokens"],
                b["prompt_tokens"] + b["completion_tokens"],
                0,
            ),
            (f"{task}: throughput, examples/s", a["examples_per_s"], b["examples_per_s"], 3),
        ]
        if "server" in a and "server" in b:
            rows += _server_rows(task, a["server"], b["server"])
        elif "server" in b:  # lmc's embedded model in process: it counts its own reuse
            rows += _embedded_rows(task, a, b["server"])
        if "compile" in ours and "compile" in theirs:
            c, d = ours["compile"], theirs["compile"]
            rows += [
                (f"{task}: compiled dev metric", c["dev"]["metric"], d["dev"]["metric"], 3),
                (
                    f"{task}: compiled test metric (n={c['test']['n']})",
                    c["test"]["metric"],
                    d["test"]["metric"],
                    3,
                ),
                (f"{task}: compile LM calls", c["calls"], d["calls"], 0),
                (f"{task}: compile tokens", c["tokens"], d["tokens"], 0),
                (f"{task}: compile wall time, s", c["wall_s"], d["wall_s"], 1),
            ]
    lines = ["| figure | lmc | DSPy | lmc / DSPy |", "|---|---:|---:|---:|"]
    for name, ours_value, theirs_value, digits in rows:
        lines.append(
            f"| {name} | {_fmt(ours_value, digits)} | {_fmt(theirs_value, digits)} "
            f"| {_ratio(ours_value, theirs_value)} |"
        )
    return lines


def _server_rows(
    task: str, ours: dict[str, float], theirs: dict[str, float]
) -> list[tuple[str, float | None, float | None, int]]:
    """What the model server did for each side's zero-shot run: prompt tokens it evaluated
    after reusing the previous request's prefix, and the share of prompt tokens it reused."""
    return [
        (
            f"{task}: zero-shot prompt tokens the server evaluated (after prefix reuse)",
            ours["evaluated_prompt_tokens"],
            theirs["evaluated_prompt_tokens"],
            0,
        ),
        (
            f"{task}: zero-shot share of prompt tokens reused",
            _reused_share(ours),
            _reused_share(theirs),
            3,
        ),
        (
            f"{task}: zero-shot server time evaluating prompts, s",
            ours["prompt_eval_s"],
            theirs["prompt_eval_s"],
            1,
        ),
    ]


def _embedded_rows(
    task: str, ours: dict[str, Any], theirs: dict[str, float]
) -> list[tuple[str, float | None, float | None, int]]:
    """What lmc's embedded model reused of its own previous prompt, beside what DSPy's server
    reused of its cache."""
    return [
        (
            f"{task}: zero-shot prompt tokens the model evaluated (after prefix reuse)",
            ours["evaluated_prompt_tokens"],
            theirs["evaluated_prompt_tokens"],
            0,
        ),
        (
            f"{task}: zero-shot share of prompt tokens reused",
            _reused_share(ours),
            _reused_share(theirs),
            3,
        ),
    ]


def _reused_share(side: dict[str, Any]) -> float | None:
    """Of the prompt tokens a model was given, the share it reused from an earlier prompt."""
    reused, evaluated = side["reused_prompt_tokens"], side["evaluated_prompt_tokens"]
    if reused is None or evaluated is None or reused + evaluated == 0:
        return None
    return float(reused / (reused + evaluated))


def _curve(row: dict[str, Any]) -> list[tuple[float, float]]:
    """(compile calls spent, dev metric) points of one task: zero-shot at 0 calls, then lmc's
    metric after each pass, or DSPy's compiled program at the calls its optimizer spent."""
    points = [(0.0, row["zero_shot"]["metric"])]
    compiled = row.get("compile")
    if compiled:
        steps = compiled.get("trajectory") or [(compiled["calls"], compiled["dev"]["metric"])]
        points += [(float(calls), float(metric)) for calls, metric in steps]
    return points


def plot(lmc: dict[str, Any], dspy: dict[str, Any], path: Path) -> bool:
    """Dev metric against LM calls spent on compiling, per task; drawn by the DSPy venv's
    matplotlib so the project venv gains nothing."""
    points = {
        side: {task: _curve(row) for task, row in result["tasks"].items()}
        for side, result in (("lmc", lmc), ("DSPy", dspy))
    }
    if not DSPY_PYTHON.exists():
        return False
    done = subprocess.run(
        [str(DSPY_PYTHON), str(BENCH / "plot.py"), str(path)], input=json.dumps(points), text=True
    )
    return done.returncode == 0


SERVER_NAMES = {
    DEFAULT_SERVER: "llama-cpp-python server",
    "llama.cpp": "llama.cpp server (`llama-server`, one slot, built by bench/llama_server.py)",
}


def write_report(results: dict[str, Any], json_path: Path) -> Path:
    """`<stem>.md` and `<stem>.png` beside the results JSON; returns the Markdown file."""
    config, lmc, dspy = results["config"], results["lmc"], results["dspy"]
    cold = {side: tuple(figures) for side, figures in results["cold_start_s_mb"].items()}
    png = json_path.with_suffix(".png")
    plotted = plot(lmc, dspy, png)
    took = f" ({results['minutes']:.1f} min)" if "minutes" in results else ""
    server = SERVER_NAMES[config.get("server", DEFAULT_SERVER)] + " (n_ctx 4096, 2 threads)"
    if config.get("lmc_model") == "embedded":
        where = (
            f"DSPy on one {server}; lmc on its embedded model, the same GGUF file in its own "
            "process (lmc's default, no server; greedy replies held to the schema by checking "
            "the model's top token first)"
        )
    else:
        where = f"One {server} for both"
    at = f" at lmc commit {results['commit']}" if results.get("commit") else ""
    lines = [
        f"# lmc vs DSPy {dspy['version']}: {config['model']}, {results.get('date', '')}",
        "",
        f"`{results.get('command', 'python bench/run.py')}`{took}{at}. {where}; "
        "temperature 0, no cache, at most 512 tokens per reply"
        + (
            f" (an lmc reply held to its schema: what its bounds need, up to {room:,}), "
            if (room := results.get("held_reply_tokens_up_to"))
            else ", "
        )
        + f"{config['concurrency']} requests in flight on each side (the server "
        "and the embedded model answer one at a time). Data: the first "
        f"{config['limit']} records of each split of shared/data. Metrics (bench/common.py, the "
        "same code on both sides): gsm8k the last number of `answer` equals `final_answer`; "
        "banking77 and fever exact label; hotpotqa token F1. Each system uses its default "
        "prompt format: lmc's `json` backend (the model is held to the outputs' JSON Schema), "
        "DSPy's ChatAdapter with its JSONAdapter fallback.",
        "",
        *table(lmc, dspy, cold),
        "",
        "- Format-failure rate: lmc, first-try replies that needed a repair call; DSPy, "
        "ChatAdapter parses that failed (each triggers the JSONAdapter fallback call). "
        "'No prediction': the example failed even after that.",
        "- Compile: DSPy `BootstrapFewShotWithRandomSearch(max_bootstrapped_demos=4, "
        "max_labeled_demos=4, num_candidate_programs=4)` vs lmc's default pipeline "
        f"(`{DEFAULT_PIPELINE}` at its most thorough), same train/dev slices, test scored once "
        "at the end. DSPy ran first; the LM calls it spent on a task were lmc's `budget_calls` "
        "for that task, and lmc fitted its default pipeline to them (the pipeline it chose is "
        "in the JSON). MIPROv2 was not run: its instruction proposals need a model that "
        "writes usable instructions, and its trials do not fit a 2-core run.",
        "- Throughput is the zero-shot dev run: lmc `run_records` vs `dspy.Evaluate`, "
        "same concurrency. Peak RSS includes each side's fake-LM overhead run and, for "
        "hotpotqa, its BM25 index"
        + (", and lmc's the model itself. " if config.get("lmc_model") == "embedded" else ". ")
        + (
            "lmc calls the server with its own stdlib HTTP client and never imports litellm (a "
            if results.get("served_client") == "direct"
            else "lmc calls the server through litellm ("
        )
        + f"process that only imports litellm peaks at {results['litellm_import_mb']:.0f} MB); "
        "DSPy 3.4 reaches OpenAI-compatible servers with its own vendored HTTP client and never "
        "imports it.",
    ]
    if plotted:
        lines += ["", f"![dev metric vs LM calls]({png.name})"]
    report = json_path.with_suffix(".md")
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        print(write_report(json.loads(path.read_text(encoding="utf-8")), path))
