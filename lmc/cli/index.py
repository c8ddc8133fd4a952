"""`lmc index build`: build (or find) the on-disk index of a corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from lmc.cli.errors import EXIT_OK
from lmc.retrieval.index import build_index, read_corpus
from lmc.runtime.progress import WorkProgress


def build(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False, markup=False)
    started = time.perf_counter()
    with WorkProgress(err, f"reading {args.corpus}", None, "passages") as progress:
        corpus = read_corpus(
            Path(args.corpus), args.text, progress=lambda n: progress.advance(n - progress.done)
        )
        progress.describe(f"indexing {len(corpus.texts)} passages ({args.kind})")
        folder, built = build_index(corpus, args.kind)
    what = f"built in {time.perf_counter() - started:.1f}s" if built else "already built"
    print(
        f"{args.kind} index of {args.corpus} ({len(corpus.texts)} passages, field "
        f"'{args.text}'): {what}, at {folder}"
    )
    return EXIT_OK
