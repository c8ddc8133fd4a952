"""The Lark parser for `.lmp` text (LALR, from `grammar/lmp.lark`), built once per process."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark

from lmc.files import cache_dir

KEYWORDS = frozenset(
    "signature program input output return import for in range predict chain_of_thought "
    "retrieve index metric true false function call react with".split()
)


@cache
def lark_parser() -> Lark:
    grammar = resources.files("lmc.grammar").joinpath("lmp.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        start=["start", "sig_text"],
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_grammar_cache(),
    )


def _grammar_cache() -> str | bool:
    """Where Lark keeps the analysed grammar: building the LALR tables takes most of a short
    `lmc check`, loading them a few milliseconds. Lark stores the hash of the grammar, its options
    and versions in the file and rebuilds on any difference, or when the file cannot be read (a
    half-written one from a concurrent first run included); so the cache is never stale."""
    folder = cache_dir() / "grammar"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False  # a read-only home: build the tables every time
    return str(folder / "lmp.lark.cache")
