"""The shipped examples are what users copy first: they must check and be in canonical form."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmc.ir.lower import load_text
from lmc.syntax.parser import parse
from lmc.syntax.printer import print_module

EXAMPLES = sorted(Path(__file__).parents[2].joinpath("examples").rglob("*.lmp"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.parent.name))
def test_example_checks_and_is_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    checked = load_text(text, str(path))
    assert checked.graphs
    assert print_module(parse(text, str(path))) == text
