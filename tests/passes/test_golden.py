"""Golden tests of every pass: IR in, IR out, as sqlglot and xDSL test theirs.

Each case in `tests/passes/golden/<pass>/` is a program, optional data and a fake LM's script, and
`<case>.expected`: the program the pass returns in the IR's text form (itself a `.lmp` file, which
must parse back to the result), then what the pass said and bought, as comments. What a case is
made of is in `golden_cases.py`. Run with `LMC_UPDATE_GOLDEN=1` to (re)write the expected files
from the current behaviour, then review every one by hand. No test runs a real LM.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from golden_cases import GOLDEN, SUFFIXES, case_id, case_paths, load_case, render, run_case

from lmc.ir.text import parse_program, print_program
from lmc.plugins import PASSES

UPDATE = os.environ.get("LMC_UPDATE_GOLDEN") == "1"
CASES = case_paths()


def test_every_pass_has_cases_and_every_folder_is_a_pass() -> None:
    assert sorted(folder.name for folder in GOLDEN.iterdir()) == list(PASSES.names())
    for name in PASSES.names():
        assert len(list((GOLDEN / name).glob("*.lmp"))) >= 2, name


def test_every_file_belongs_to_a_case() -> None:
    # A misspelt data or script file would otherwise be ignored, and its case run without it.
    cases = set(CASES)
    for path in GOLDEN.glob("*/*"):
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        assert suffix is not None, f"{path.relative_to(GOLDEN)}: not a case file ({SUFFIXES})"
        case = path.with_name(path.name.removesuffix(suffix) + ".lmp")
        assert case in cases, f"{path.relative_to(GOLDEN)}: no {case.name} beside it"


@pytest.mark.parametrize("path", CASES, ids=[case_id(c) for c in CASES])
def test_pass_output_matches_golden(path: Path) -> None:
    case = load_case(path)
    graph = case.program.ir
    before, before_text = graph.copy(), print_program(graph)
    projected = case.a_pass.projected_calls(graph, case.context)

    outcome = run_case(case)

    assert outcome.program.verify() == []
    assert graph == before, "the pass changed its input"
    assert print_program(graph) == before_text, "the pass changed its input"
    # What the budget check before a compile counts on.
    assert outcome.record.calls <= projected, "more LM calls than the pass projected"
    rendered = render(case, outcome)
    expected_file = path.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(rendered, encoding="utf-8")
    assert expected_file.exists(), f"missing {expected_file.name}; run with LMC_UPDATE_GOLDEN=1"
    expected = expected_file.read_text(encoding="utf-8")
    if rendered != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            f"{case.id}.expected",
            f"{case.id} now",
        )
        pytest.fail(
            "the pass's output changed; if that is meant, rerun with LMC_UPDATE_GOLDEN=1 and "
            "review the diff:\n" + "".join(diff),
            pytrace=False,
        )
    assert parse_program(expected, str(path)) == outcome.program
