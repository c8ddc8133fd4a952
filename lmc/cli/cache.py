"""`lmc cache stats` and `lmc cache clear`: the LM response cache."""

from __future__ import annotations

import argparse

from lmc.cli.errors import EXIT_OK
from lmc.files import CacheUnusable
from lmc.runtime.cache import ResponseCache


def stats(args: argparse.Namespace) -> int:
    found = ResponseCache().stats()
    print(f"{found.path}: {found.entries} entries, {found.bytes / 1e6:.1f} MB")
    for model, count in found.models.items():
        print(f"  {model}: {count}")
    return EXIT_OK


def clear(args: argparse.Namespace) -> int:
    cache = ResponseCache()
    try:
        removed = cache.clear()
    except CacheUnusable:
        # A corrupt file holds nothing to keep: clearing the cache removes it.
        if not cache.remove_if_corrupt():
            raise
        print(f"removed {cache.path}: it was corrupt (not a database sqlite can read)")
        return EXIT_OK
    print(f"removed {removed} entries")
    return EXIT_OK
