"""`lmc index build`: build (or find) the on-disk index of a corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lmc.cli.run import RunUsageError


def add_commands(commands: Any) -> None:
    index = commands.add_parser("index", help="retrieval indexes")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    build = index_commands.add_parser("build", help="build the index of a JSONL corpus")
    build.add_argument("corpus", metavar="CORPUS.jsonl")
    build.add_argument("--text", default="text", help="the field holding each passage")
    build.add_argument("--kind", default="bm25", choices=("bm25", "embeddings"))
    build.set_defaults(handler=cmd_index_build)


def cmd_index_build(args: argparse.Namespace, out: Console) -> int:
    from lmc.retrieval.index import build_index, read_corpus
    from lmc.runtime.data import DataError

    err = Console(stderr=True, highlight=False, markup=False)
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task(f"reading {args.corpus}", total=None)
            corpus = read_corpus(
                Path(args.corpus),
                args.text,
                progress=lambda n: progress.update(task, description=f"reading: {n} passages"),
            )
            progress.update(
                task, description=f"indexing {len(corpus.texts)} passages ({args.kind})"
            )
            folder, built = build_index(corpus, args.kind)
    except DataError as error:
        raise RunUsageError(str(error)) from None
    what = f"built in {time.perf_counter() - started:.1f}s" if built else "already built"
    out.print(
        f"{args.kind} index of {args.corpus} ({len(corpus.texts)} passages, field "
        f"'{args.text}'): {what}, at {folder}"
    )
    return 0
