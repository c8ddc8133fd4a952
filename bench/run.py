"""lmc and DSPy 3.4.x side by side on one local model server and the same data: a table of ratios.

    .venv/bin/python bench/run.py [--model smollm2|qwen0.5b|qwen1.5b]
        [--tasks gsm8k,banking77,hotpotqa] [--limit 20] [--skip-compile]

Sets up DSPy in its own venv (`bench/.venv-dspy`, made once), fetches and hash-checks the model
file when it is a Qwen one (`bench/models.py`), starts one llama-cpp-python server for both, runs
`bench/dspy_side.py` then `bench/lmc_side.py` as subprocesses (JSON in and out; lmc compiles
within the calls DSPy's optimizer spent), and writes `bench/results/<date>-<model>.md`, `.json`
and `.png`. Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models import MODELS, model_path

from lmc.passes.registry import DEFAULT_PIPELINE

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROJECT_PYTHON = Path(sys.executable)
DSPY_VENV = BENCH / ".venv-dspy"
DSPY_PYTHON = DSPY_VENV / "bin" / "python"
DSPY_PACKAGES = ["dspy==3.4.*", "bm25s", "PyStemmer", "matplotlib"]
RESULTS = BENCH / "results"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def setup_dspy_venv() -> None:
    """Make `bench/.venv-dspy` with DSPy 3.4.x, bm25s, PyStemmer and matplotlib; once."""
    marker = DSPY_VENV / ".bench-ready"
    if marker.exists():
        return
    if not DSPY_PYTHON.exists():
        say(f"creating {DSPY_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(DSPY_VENV)], check=True)
    say("installing " + " ".join(DSPY_PACKAGES) + " into it (about a minute)")
    subprocess.run([str(DSPY_PYTHON), "-m", "pip", "install", "-q", *DSPY_PACKAGES], check=True)
    marker.write_text("\n".join(DSPY_PACKAGES) + "\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def model_server(gguf: Path, log: Path) -> Iterator[str]:
    """One llama-cpp-python server for both sides; always stopped on the way out."""
    port = free_port()
    command = [str(PROJECT_PYTHON), "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--model_alias", "bench", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--n_ctx", "4096", "--n_threads", "2"]
    say(f"starting the model server on port {port} (log: {log})")
    with log.open("w", encoding="utf-8") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    api_base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the model server exited with {server.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{api_base}/models", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the model server was not ready in 120 s; see {log}")
            time.sleep(0.5)
        say("model server ready")
        yield api_base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        say("model server stopped")


def cold_start(python: Path, module: str, runs: int = 3) -> tuple[float, float]:
    """Best of `runs` fresh-process import times of `module` (s), and that process's peak
    resident memory after the import (MB)."""
    code = (
        "import resource, time; t = time.perf_counter(); import " + module + "; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    times, memory = [], []
    for _ in range(runs):
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
        seconds, kib = done.stdout.strip().splitlines()[-1].split()
        times.append(float(seconds))
        memory.append(int(kib) / 1024)
    return min(times), min(memory)


def run_side(python: Path, script: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one side as a subprocess: config on stdin, progress through, result JSON on stdout."""
    done = subprocess.run(
        [str(python), str(BENCH / script)],
        input=json.dumps(config),
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


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
    done = subprocess.run(
        [str(DSPY_PYTHON), str(BENCH / "plot.py"), str(path)], input=json.dumps(points), text=True
    )
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="smollm2")
    parser.add_argument("--tasks", default="gsm8k,banking77,hotpotqa")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    unknown = set(tasks) - {"gsm8k", "banking77", "hotpotqa"}
    if unknown:
        raise SystemExit(f"unknown task(s): {', '.join(sorted(unknown))}")
    gguf = model_path(args.model)
    setup_dspy_venv()

    say("cold start: import lmc / import dspy, best of 3 each")
    cold = {"lmc": cold_start(PROJECT_PYTHON, "lmc"), "dspy": cold_start(DSPY_PYTHON, "dspy")}
    # lmc reaches a served model through litellm; what importing it alone costs explains the
    # peak-memory row.
    litellm_mb = cold_start(PROJECT_PYTHON, "litellm", runs=1)[1]
    RESULTS.mkdir(exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{args.model}"
    started = time.perf_counter()
    with model_server(gguf, RESULTS / f"{stem}-server.log") as api_base:
        config = {
            "api_base": api_base,
            "tasks": tasks,
            "limit": args.limit,
            "compile": not args.skip_compile,
            "concurrency": args.concurrency,
            "overhead_calls": 1000,
        }
        # DSPy first: its optimizer has no call budget, so the calls it spent compiling each task
        # become lmc's budget for that task.
        dspy_result = run_side(DSPY_PYTHON, "dspy_side.py", config)
        config["compile_budget"] = {
            task: row["compile"]["calls"]
            for task, row in dspy_result["tasks"].items()
            if "compile" in row
        }
        lmc_result = run_side(PROJECT_PYTHON, "lmc_side.py", config)
    minutes = (time.perf_counter() - started) / 60

    (RESULTS / f"{stem}.json").write_text(
        json.dumps(
            {
                "config": config | {"model": args.model},
                "cold_start_s_mb": cold,
                "litellm_import_mb": litellm_mb,
                "lmc": lmc_result,
                "dspy": dspy_result,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    png = RESULTS / f"{stem}.png"
    plotted = plot(lmc_result, dspy_result, png)
    command = (
        f"python bench/run.py --model {args.model} --tasks {','.join(tasks)} --limit {args.limit}"
    )
    command += " --skip-compile" if args.skip_compile else ""
    lines = [
        f"# lmc vs DSPy {dspy_result['version']}: {args.model}, {stem[:10]}",
        "",
        f"`{command}` ({minutes:.1f} min). One llama-cpp-python server (n_ctx 4096, 2 threads) "
        f"for both; temperature 0, no cache, at most 512 tokens per reply, {args.concurrency} "
        "requests in flight on each side. Data: the first --limit records of each split of "
        "shared/data. Metrics (bench/common.py, the same code on both sides): gsm8k the last "
        "number of `answer` equals `final_answer`; banking77 exact label; hotpotqa token F1. "
        "Each system uses its default prompt format: lmc's `json` backend (the server is sent "
        "the outputs' JSON Schema as response_format), DSPy's ChatAdapter with its JSONAdapter "
        "fallback.",
        "",
        *table(lmc_result, dspy_result, cold),
        "",
        "- Format-failure rate: lmc, first-try replies that needed a repair call; DSPy, "
        "ChatAdapter parses that failed (each triggers the JSONAdapter fallback call). "
        "'No prediction': the example failed even after that.",
        "- Compile: DSPy `BootstrapFewShotWithRandomSearch(max_bootstrapped_demos=4, "
        "max_labeled_demos=4, num_candidate_programs=4)` vs lmc's default pipeline "
        f"(`{DEFAULT_PIPELINE}`), same train/dev slices, test scored once at the end. DSPy ran "
        "first; the LM calls it spent on a task were lmc's `budget_calls` for that task "
        "(lmc refuses a pipeline whose projected calls exceed the budget, so bootstrap-demos' "
        "`candidates` was lowered from 4 until it fitted; the figure used is in the JSON). "
        "MIPROv2 was not run: its instruction proposals need a model that writes usable "
        "instructions, and its trials do not fit a 2-core run.",
        "- Throughput is the zero-shot dev run: lmc `run_records` vs `dspy.Evaluate`, "
        "same concurrency. Peak RSS includes each side's fake-LM overhead run and, for "
        "hotpotqa, its BM25 index. lmc calls the server through litellm, and a process "
        f"that only imports litellm peaks at {litellm_mb:.0f} MB; DSPy 3.4 reaches "
        "OpenAI-compatible servers with its own vendored HTTP client and never imports it.",
    ]
    if plotted:
        lines += ["", f"![dev metric vs LM calls]({png.name})"]
    report = RESULTS / f"{stem}.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    say(f"wrote {report}" + (f" and {png}" if plotted else ""))


if __name__ == "__main__":
    main()
