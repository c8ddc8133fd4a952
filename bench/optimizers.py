"""Issue 16's benchmark: lmc's default compile against DSPy's optimizers, one task per run.

    .venv/bin/python bench/optimizers.py --task banking77 --model qwen0.5b \\
        --train 200 --dev 50 --test 100 --dspy-adapter json
    .venv/bin/python bench/optimizers.py --report     # merge the saved tasks into one table

One llama-cpp-python server for both sides, the same data slices, the same metric code
(`bench/common.py`). In order: DSPy zero-shot on test and `BootstrapFewShotWithRandomSearch`;
lmc zero-shot and its default compile (no pipeline named) with a budget of half the calls that
random search spent; then DSPy's `MIPROv2(auto="light")`. Every compiled program is scored once
on test. Each side writes each finished phase to `bench/results/optimizers/<task>-<model>.*.json`
as it goes, and both reach the server through a proxy that keeps every reply
(`bench/replay.py`), so a run that stops resumes where it was, inside a phase too (`--fresh`
starts over), and the task's figures land in `<task>-<model>.json`; `--report` turns every
saved task into `bench/results/<date>-optimizers.md`. Hours of work on a 2-core machine: never
part of CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from typing import Any

from models import MODELS, model_path
from optimizers_report import write_report
from replay import replaying
from run import (
    DSPY_PYTHON,
    PROJECT_PYTHON,
    RESULTS,
    current_commit,
    model_server,
    run_side,
    say,
    setup_dspy_venv,
)

SAVED = RESULTS / "optimizers"
# MIPROv2's instruction proposals send the program's code, a dataset summary and demos in one
# prompt: 4,390 tokens on FEVER, over the 4,096 the other benchmarks' server holds. A larger
# context changes no reply whose prompt fits the smaller one (the random search and lmc phases
# of FEVER and Banking77 ran at 4,096).
SERVER_CONTEXT = 8192
TASKS = ("banking77", "fever", "gsm8k", "hotpotqa")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS)
    parser.add_argument("--model", choices=MODELS, default="qwen0.5b")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--dev", type=int, default=50)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument(
        "--dspy-adapter",
        choices=("chat", "json"),
        default="chat",
        help="DSPy's ChatAdapter (its default) or JSONAdapter where the default cannot finish",
    )
    parser.add_argument("--optimizers", default="rs,mipro", help="DSPy's side: rs, mipro")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fresh", action="store_true", help="drop this task's saved phases")
    parser.add_argument("--report", action="store_true", help="only merge the saved tasks")
    args = parser.parse_args()
    if args.report:
        say(f"wrote {write_report(SAVED, RESULTS)}")
        return
    if args.task is None:
        parser.error("--task is required unless --report")
    run_task(args)
    say(f"wrote {write_report(SAVED, RESULTS)}")


def run_task(args: argparse.Namespace) -> None:
    optimizers = [name.strip() for name in args.optimizers.split(",") if name.strip()]
    if not set(optimizers) <= {"rs", "mipro"} or "rs" not in optimizers:
        raise SystemExit("--optimizers: rs (which sets lmc's budget), optionally mipro")
    stem = f"{args.task}-{args.model}"
    SAVED.mkdir(parents=True, exist_ok=True)
    partials = {side: SAVED / f"{stem}.{side}.partial.json" for side in ("dspy", "lmc")}
    if args.fresh:
        programs = SAVED.glob(f"{stem}.*.program.json")  # compiled, kept for their test runs
        kept = (SAVED / f"{stem}.options.json", SAVED / f"{stem}.replies.sqlite")
        for path in (*partials.values(), *kept, *programs):
            path.unlink(missing_ok=True)
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    config: dict[str, Any] = {
        "experiment": "optimizers",
        "task": args.task,
        "tasks": [args.task],
        "sizes": sizes,
        "concurrency": args.concurrency,
        "overhead_calls": 0,
    }
    _check_same_options(stem, {"sizes": sizes, "adapter": args.dspy_adapter})
    gguf = model_path(args.model)
    setup_dspy_venv()
    commit = current_commit()  # now: the tree may move on while this runs
    started = time.perf_counter()
    server_log = SAVED / f"{stem}-server.log"
    replies = SAVED / f"{stem}.replies.sqlite"
    with (
        model_server(gguf, server_log, context=SERVER_CONTEXT) as api_base,
        replaying(api_base.removesuffix("/v1"), replies) as replay_root,
    ):
        config |= {"api_base": api_base, "server_log": str(server_log), "replay_root": replay_root}
        dspy_config = config | {"adapter": args.dspy_adapter, "partial": str(partials["dspy"])}
        # Random search first: the calls it spends set lmc's budget.
        run_side(DSPY_PYTHON, "dspy_side.py", dspy_config | {"optimizers": ["rs"]})
        spent = json.loads(partials["dspy"].read_text(encoding="utf-8"))
        budget = spent["optimizers"]["rs"]["calls"] // 2
        lmc_config = config | {"budget": budget, "partial": str(partials["lmc"])}
        lmc = run_side(PROJECT_PYTHON, "lmc_side.py", lmc_config)["tasks"][args.task]
        # Saved now too: MIPROv2 runs for hours, and a stop there must not lose these figures.
        save_task(
            args, optimizers, commit, started, lmc, json.loads(partials["dspy"].read_text("utf-8"))
        )
        dspy = run_side(DSPY_PYTHON, "dspy_side.py", dspy_config | {"optimizers": optimizers})
    save_task(args, optimizers, commit, started, lmc, dspy["tasks"][args.task])


def save_task(
    args: argparse.Namespace,
    optimizers: list[str],
    commit: str,
    started: float,
    lmc: dict[str, Any],
    dspy: dict[str, Any],
) -> None:
    """The task's figures as far as they go, in `<task>-<model>.json`."""
    command = (
        f"python bench/optimizers.py --task {args.task} --model {args.model} "
        f"--train {args.train} --dev {args.dev} --test {args.test} "
        f"--dspy-adapter {args.dspy_adapter} --optimizers {','.join(optimizers)}"
    )
    figures = {
        "task": args.task,
        "model": args.model,
        "sizes": {"train": args.train, "dev": args.dev, "test": args.test},
        "command": command,
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "minutes": (time.perf_counter() - started) / 60,
        "lmc": lmc,
        "dspy": dspy,
    }
    path = SAVED / f"{args.task}-{args.model}.json"
    path.write_text(json.dumps(figures, indent=1), encoding="utf-8")


def _check_same_options(stem: str, options: dict[str, Any]) -> None:
    """Saved phases resume only a run of the same task, sizes and adapter. Zero-shot scores
    read only the test slice, so while no compile phase is saved, train and dev may change."""
    stamp = SAVED / f"{stem}.options.json"
    if stamp.exists():
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        if saved != options and not _only_zero_shot_saved(stem, saved, options):
            raise SystemExit(
                f"the phases saved for {stem} were run with {json.dumps(saved)}; "
                "pass --fresh to start over"
            )
    stamp.write_text(json.dumps(options, sort_keys=True), encoding="utf-8")


def _only_zero_shot_saved(stem: str, saved: dict[str, Any], options: dict[str, Any]) -> bool:
    same_test = saved["sizes"]["test"] == options["sizes"]["test"]
    if not same_test or saved["adapter"] != options["adapter"]:
        return False
    for side in ("dspy", "lmc"):
        partial = SAVED / f"{stem}.{side}.partial.json"
        phases = json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
        if "compile" in phases or phases.get("optimizers") or phases.get("compiled"):
            return False
    return True


if __name__ == "__main__":
    main()
