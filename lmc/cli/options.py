"""Options that several commands share, each defined once.

Only argparse and the plug-in registries' names here: building the parser (for `lmc --help`, or
any command) loads nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lmc.plugins import BACKENDS, EXECUTORS, METRICS, MODEL_KINDS, PASSES

ANY_PROGRAM = "PROGRAM.lmp|ARTIFACT.json"


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (argparse says so, exit 2)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of {minimum} or more, found '{text}'"
            )
        return value

    return whole_number


def program_file(parser: argparse.ArgumentParser, metavar: str = ANY_PROGRAM) -> None:
    parser.add_argument("program_file", metavar=metavar)
    parser.add_argument("--program", help="which program of the file")


def model(parser: argparse.ArgumentParser) -> None:
    """The LM and how it is called: `--lm`, `--api-base`, `--backend`, `--concurrency`, and for a
    hosted or served model `--timeout` and `--retries`."""
    parser.add_argument(
        "--lm",
        help="model: local (the embedded default), local:PATH.gguf, openai/NAME with --api-base "
        "(a served model), a litellm string such as anthropic/NAME, or KIND:SPEC of a model "
        f"kind ({MODEL_KINDS.described()})",
    )
    parser.add_argument("--api-base", help="address of a served model (OpenAI-style server)")
    parser.add_argument("--backend", help=f"prompt format: {BACKENDS.described()} (default: json)")
    parser.add_argument(
        "--concurrency",
        type=at_least(1),
        default=4,
        help="records in flight at once (with --executor ray: on each worker)",
    )
    # Their defaults live with the client (lmc.backends.clients.retry); None here means those.
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="hosted or served model: how long one try of a call may wait (default: 120)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="hosted or served model: tries after the first when a call fails for a passing "
        "reason (no connection, timeout, 408, 409, 429, 5xx), with backoff and Retry-After "
        "(default: 5)",
    )


def executor(parser: argparse.ArgumentParser) -> None:
    """Where records run: this process, or a cluster (`--executor ray`)."""
    parser.add_argument(
        "--executor",
        default="local",
        help=f"where records run: {EXECUTORS.described()} (default: local, this process); "
        "ray spreads them over a Ray cluster (pip install 'lmc[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: "
        "$RAY_ADDRESS, else a new one on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help="with --executor ray: worker processes, each with its own LM client (default: one "
        "per CPU of the cluster)",
    )


def call_log(parser: argparse.ArgumentParser) -> None:
    """Where LM calls are remembered: the response cache, and a trace file."""
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--trace", metavar="TRACE.jsonl", help="write every LM call here")


def compile_inputs(parser: argparse.ArgumentParser, *, train_required: bool) -> None:
    """What passes learn from: data, a metric, a seed, a teacher model and a call budget."""
    parser.add_argument("--train", required=train_required, metavar="TRAIN.jsonl")
    parser.add_argument("--dev", metavar="DEV.jsonl", help="default: part of --train (by --seed)")
    parser.add_argument(
        "--metric",
        help=f"NAME(FIELD), NAME one of {METRICS.described()}; or package.module:function "
        "(default: the file's metric)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-lm", help="model that runs the program for demos")
    parser.add_argument(
        "--budget-calls", type=at_least(0), help="never make more LM calls than this"
    )


def pipeline(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    """`-p PASSES`; required when there is no default."""
    described = f"default: {default}" if default else "e.g. dead-steps,dedupe-steps"
    parser.add_argument(
        "-p",
        "--pipeline",
        required=default is None,
        help=f"passes, in order, each NAME or NAME{{option=value,...}}; NAME one of "
        f"{PASSES.described()} ({described})",
    )


def corpora(parser: argparse.ArgumentParser) -> None:
    """`--corpus NAME=PATH`: where an index's corpus is, for a program that runs."""
    parser.add_argument(
        "--corpus",
        action="append",
        metavar="NAME=PATH",
        help="read index NAME's corpus from PATH (an artifact reads only corpora in its folder "
        "unless named here)",
    )
