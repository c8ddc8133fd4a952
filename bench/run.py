"""lmc and DSPy 3.4.x side by side on one local model server and the same data: a table of ratios.

    .venv/bin/python bench/run.py [--model smollm2|qwen0.5b|qwen1.5b]
        [--lmc-model embedded|served] [--tasks gsm8k,banking77,hotpotqa,fever] [--limit 20]
        [--skip-compile | --compile-tasks T,...]
        [--dspy-results RESULTS.dspy.json]

Sets up DSPy in its own venv (`bench/.venv-dspy`, made once), fetches and hash-checks the model
file when it is a Qwen one (`bench/models.py`), starts one llama-cpp-python server for both, runs
`bench/dspy_side.py` then `bench/lmc_side.py` as subprocesses (JSON in and out; lmc compiles
within the calls DSPy's optimizer spent), and writes `bench/results/<date>-<model>.md`, `.json`
and `.png`. lmc's side calls the same server, except on SmolLM2, where by default it runs lmc's
embedded model in its own process: what a user of lmc's default gets, beside the best DSPy can do
with the same file, a server. Not part of CI.
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

import llama_server
from common import DEFAULT_SERVER, TASKS
from models import MODELS, model_path
from report import write_report

from lmc.backends.schema import MOST_REPLY_TOKENS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROJECT_PYTHON = Path(sys.executable)
DSPY_VENV = BENCH / ".venv-dspy"
DSPY_PYTHON = DSPY_VENV / "bin" / "python"
# optuna: MIPROv2 searches with it, and DSPy does not install it.
DSPY_PACKAGES = ["dspy==3.4.*", "bm25s", "PyStemmer", "matplotlib", "optuna"]
RESULTS = BENCH / "results"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def setup_dspy_venv() -> None:
    """Make `bench/.venv-dspy` with DSPy 3.4.x and what the bench uses beside it; again only
    when that list changes."""
    marker = DSPY_VENV / ".bench-ready"
    wanted = "\n".join(DSPY_PACKAGES) + "\n"
    if marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return
    if not DSPY_PYTHON.exists():
        say(f"creating {DSPY_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(DSPY_VENV)], check=True)
    say("installing " + " ".join(DSPY_PACKAGES) + " into it (about a minute)")
    subprocess.run([str(DSPY_PYTHON), "-m", "pip", "install", "-q", *DSPY_PACKAGES], check=True)
    marker.write_text(wanted, encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _python_server(gguf: Path, port: int, context: int) -> list[str]:
    command = [str(PROJECT_PYTHON), "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--model_alias", "bench", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--n_ctx", str(context), "--n_threads", "2"]


def _llama_cpp_server(gguf: Path, port: int, context: int) -> list[str]:
    command = [str(llama_server.build()), "--model", str(gguf), "--alias", "bench"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(context)]
    # One sequence at a time with the whole context, as llama-cpp-python's server runs; no
    # prompt cache beyond the one slot's, which is the reuse llama-cpp-python's server has.
    return [*command, "--threads", "2", "--parallel", "1", "--cache-ram", "0"]


# The servers both sides can run on: `bench/llama_server.py` says why there are two.
SERVERS = {DEFAULT_SERVER: _python_server, "llama.cpp": _llama_cpp_server}


@contextlib.contextmanager
def model_server(
    gguf: Path, log: Path, context: int = 4096, server: str = DEFAULT_SERVER
) -> Iterator[str]:
    """One model server for both sides, with a context of `context` tokens; always stopped on
    the way out."""
    port = free_port()
    command = SERVERS[server](gguf, port, context)
    say(f"starting the model server on port {port} (log: {log})")
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    api_base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the model server exited with {process.returncode}; see {log}")
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
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        say("model server stopped")


def cold_start(python: Path, module: str, runs: int = 3) -> tuple[float, float]:
    """Best of `runs` fresh-process import times of `module` (s), and that process's peak
    resident memory after the import (MB)."""
    # The peak is the process's own (VmHWM, kB): ru_maxrss would count this parent's memory too.
    code = (
        "import time; t = time.perf_counter(); import " + module + "; "
        "took = time.perf_counter() - t; "
        "print(took, next(int(line.split()[1]) for line in open('/proc/self/status') "
        "if line.startswith('VmHWM:')))"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="smollm2")
    parser.add_argument(
        "--lmc-model",
        choices=("embedded", "served"),
        help="lmc's side on its embedded model in process (the default for smollm2, which is "
        "that model) or on the benchmark's server (the default for the others)",
    )
    parser.add_argument(
        "--server",
        choices=tuple(SERVERS),
        default=DEFAULT_SERVER,
        help="the model server both sides call: llama-cpp-python's, or llama.cpp's own, which "
        "checks a drawn token against the grammar before masking the vocabulary (built once "
        "by bench/llama_server.py)",
    )
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument(
        "--compile-tasks",
        help="compile only these of --tasks (comma-separated); the others run zero-shot only",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--dspy-results",
        type=Path,
        help="reuse the DSPy side saved by an earlier run with the same options "
        "(<date>-<model>.dspy.json) instead of running it again",
    )
    args = parser.parse_args()
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise SystemExit(f"unknown task(s): {', '.join(sorted(unknown))}")
    compile_tasks = (
        [task.strip() for task in args.compile_tasks.split(",")] if args.compile_tasks else tasks
    )
    if not set(compile_tasks) <= set(tasks):
        raise SystemExit("--compile-tasks must be among --tasks")
    lmc_model = args.lmc_model or ("embedded" if args.model == "smollm2" else "served")
    if lmc_model == "embedded" and args.model != "smollm2":
        raise SystemExit("--lmc-model embedded: lmc's embedded model is smollm2")
    gguf = model_path(args.model)
    setup_dspy_venv()

    say("cold start: import lmc / import dspy, best of 3 each")
    cold = {"lmc": cold_start(PROJECT_PYTHON, "lmc"), "dspy": cold_start(DSPY_PYTHON, "dspy")}
    # lmc reached a served model through litellm until it called servers itself; what importing
    # litellm alone costs is kept beside the peak-memory row.
    litellm_mb = cold_start(PROJECT_PYTHON, "litellm", runs=1)[1]
    RESULTS.mkdir(exist_ok=True)
    other_server = args.server != DEFAULT_SERVER
    stem = f"{datetime.date.today().isoformat()}-{args.model}"
    stem += f"-{args.server}" if other_server else ""
    started = time.perf_counter()
    server_log = RESULTS / f"{stem}-server.log"
    with model_server(gguf, server_log, server=args.server) as api_base:
        config = {
            "api_base": api_base,
            "server_log": str(server_log),
            "tasks": tasks,
            "limit": args.limit,
            "compile": [] if args.skip_compile else compile_tasks,
            "concurrency": args.concurrency,
            "overhead_calls": 1000,
        }
        # DSPy first: its optimizer has no call budget, so the calls it spent compiling each task
        # become lmc's budget for that task.
        same = {key: config[key] for key in ("tasks", "limit", "compile", "concurrency")}
        same["model"] = args.model
        if other_server:  # runs saved before there was a choice had none
            same["server"] = args.server
        if args.dspy_results:
            saved = json.loads(args.dspy_results.read_text(encoding="utf-8"))
            if saved["options"] != same:
                raise SystemExit(f"{args.dspy_results} was run with {saved['options']}, not {same}")
            dspy_result = saved["result"]
        else:
            dspy_result = run_side(DSPY_PYTHON, "dspy_side.py", config)
            # kept at once: the lmc side may still fail, and DSPy's is the long one
            kept = {"options": same, "result": dspy_result}
            (RESULTS / f"{stem}.dspy.json").write_text(json.dumps(kept), encoding="utf-8")
        config["compile_budget"] = {
            task: row["compile"]["calls"]
            for task, row in dspy_result["tasks"].items()
            if "compile" in row
        }
        lmc_config = config | {"lmc_model": lmc_model}
        if lmc_model == "embedded":
            del lmc_config["server_log"]  # the server is idle while lmc runs in its own process
        lmc_result = run_side(PROJECT_PYTHON, "lmc_side.py", lmc_config)
    minutes = (time.perf_counter() - started) / 60

    command = f"python bench/run.py --model {args.model} --lmc-model {lmc_model}"
    command += f" --server {args.server}" if other_server else ""
    command += f" --tasks {','.join(tasks)}"
    command += f" --limit {args.limit}" + (" --skip-compile" if args.skip_compile else "")
    command += f" --compile-tasks {args.compile_tasks}" if args.compile_tasks else ""
    results = {
        "command": command,
        "date": stem[:10],
        "commit": current_commit(),
        "minutes": minutes,
        "config": config | {"model": args.model, "lmc_model": lmc_model, "server": args.server},
        "cold_start_s_mb": cold,
        "litellm_import_mb": litellm_mb,
        "served_client": "direct",  # lmc's stdlib client, not litellm (results before: absent)
        "held_reply_tokens_up_to": MOST_REPLY_TOKENS,  # results before: 512 for every reply
        "lmc": lmc_result,
        "dspy": dspy_result,
    }
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    report = write_report(results, json_path)
    print(report.read_text(encoding="utf-8"))
    say(f"wrote {json_path}, {report} and its plot")


def current_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return done.stdout.strip()


if __name__ == "__main__":
    main()
