"""`lmc opt FILE -p PIPELINE`: the program after the passes on stdout, in the IR's text form, and
what the passes said on stderr as `# ...` lines.

The structural passes' golden files (`tests/passes/golden/<pass>/<case>.expected`) hold exactly
that, program then comments, so for every case that needs no data, stdout followed by stderr must
be the expected file. `lmc.cli.main` runs in-process; no test reaches a real LM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from lmc.compiler.program import load

GOLDEN = Path(__file__).parent.parent / "passes" / "golden"
# Every case of the passes that decide from the program alone, and the fuse-steps case with no
# fusable pair (fuse-steps scores only what it fuses).
CASES = sorted(
    [
        *GOLDEN.glob("dead-steps/*.lmp"),
        *GOLDEN.glob("dedupe-steps/*.lmp"),
        GOLDEN / "fuse-steps" / "not_fusable_untouched.lmp",
    ]
)


def lmc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def program_part(expected: Path) -> str:
    """The expected file without the pass's `# ...` messages at its end."""
    lines = expected.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[-1].startswith("# "):
        lines.pop()
    return "".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_opt_prints_what_the_golden_file_expects(
    capsys: pytest.CaptureFixture[str], case: Path
) -> None:
    code, out, err = lmc(capsys, "opt", str(case), "-p", case.parent.name)

    assert code == EXIT_OK
    assert out + err == case.with_suffix(".expected").read_text(encoding="utf-8")
    assert out == program_part(case.with_suffix(".expected"))
    assert err
    assert all(line.startswith("# ") for line in err.splitlines())


def test_opt_writes_the_program_to_the_output_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = GOLDEN / "dead-steps" / "dead_step_removed.lmp"
    monkeypatch.chdir(tmp_path)

    code, out, _ = lmc(capsys, "opt", str(case), "-p", "dead-steps", "-o", "smaller.lmp")

    assert code == EXIT_OK
    assert out == ""
    written = Path("smaller.lmp").read_text(encoding="utf-8")
    assert written == program_part(case.with_suffix(".expected"))
    assert [s.id for s in load("smaller.lmp").ir.steps()] == ["gen"]


def test_a_pipeline_runs_its_passes_in_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = GOLDEN / "dead-steps" / "dead_chain_removed.lmp"
    _, once_dead, _ = lmc(capsys, "opt", str(case), "-p", "dead-steps")
    # Corpus paths are printed relative to the program's folder, so they read the same here.
    between = tmp_path / case.name
    between.write_text(once_dead, encoding="utf-8")
    _, then_deduped, _ = lmc(capsys, "opt", str(between), "-p", "dedupe-steps")

    code, both, err = lmc(capsys, "opt", str(case), "-p", "dead-steps,dedupe-steps")

    assert code == EXIT_OK
    assert both == then_deduped
    assert err.startswith("# dead-steps: removed ")
    assert "# dedupe-steps: " in err


def test_an_unknown_pass_exits_2_listing_the_passes(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "dead-steps" / "nothing_dead.lmp"

    code, out, err = lmc(capsys, "opt", str(case), "-p", "dead-steps,frobnicate")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err == (
        "lmc: error: unknown pass 'frobnicate'; expected 'bootstrap-demos', 'dead-steps', "
        "'dedupe-steps', 'dynamic-demos', 'ensemble', 'fuse-steps', 'instruction-search', "
        "'joint-search' or 'prune-demos'\n"
    )


def test_a_pass_that_scores_needs_train_data(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "fuse-steps" / "two_step_chain_kept.lmp"

    code, out, err = lmc(capsys, "opt", str(case), "-p", "fuse-steps")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: fuse-steps scores the program on data to decide: ")
    assert "--train" in err


@pytest.mark.parametrize("option", [["--dev", "d.jsonl"], ["--lm", "openai/x"]])
def test_data_options_without_train_are_refused(
    capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    case = GOLDEN / "dead-steps" / "nothing_dead.lmp"

    code, out, err = lmc(capsys, "opt", str(case), "-p", "dead-steps", *option)

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err == f"lmc: error: {option[0]} is for passes that learn from data: add --train DATA\n"


def test_a_missing_pipeline_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["opt", str(GOLDEN / "dead-steps" / "nothing_dead.lmp")])
    assert exited.value.code == EXIT_BAD_INPUT
    assert "-p/--pipeline" in capsys.readouterr().err


def paris(request: LMRequest) -> str:
    """Every output field filled in, the answer always right: fusing costs nothing on dev."""
    assert request.json_schema is not None
    fields = json.loads(request.json_schema)["properties"]
    return json.dumps({name: "Paris" if name == "answer" else "..." for name in fields})


def test_with_train_data_a_pass_scores_as_compile_would(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = FakeLM(paris, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    case = GOLDEN / "fuse-steps" / "two_step_chain_kept.lmp"
    train = tmp_path / "train.jsonl"
    records = [{"question": f"Capital of France, take {n}?", "answer": "Paris"} for n in range(4)]
    train.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    code, out, err = lmc(
        capsys, "opt", str(case), "-p", "fuse-steps", "--train", str(train),
        "--metric", "exact_match(answer)",
    )  # fmt: skip

    assert code == EXIT_OK
    assert out == program_part(case.with_suffix(".expected"))
    assert err.startswith("# projected LM calls: baseline on dev ≤")
    assert "# fused find and answer: saves 1 LM call per run\n" in err
    assert (
        "# fuse-steps: dev exact_match(answer) 1.000 -> 1.000 (gain +0.000 [+0.000, +0.000]), "
        in err
    )
    assert lm.requests
