"""README's examples are what lmc does: its `.lmp` example type-checks, and the mistake it shows
is the error `lmc check` prints for that example with the mistake made (file, line and column
included), so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```[a-z]*\n(.*?)^```", README, flags=re.M | re.S)


def only_block(starting: str) -> str:
    found = [block for block in BLOCKS if block.startswith(starting)]
    assert len(found) == 1, f"README should have one code block starting {starting!r}"
    return found[0]


LANGUAGE_EXAMPLE = only_block("signature GenerateAnswer {")
SAMPLE_ERROR = only_block("program.lmp:")


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_language_example_type_checks(in_tmp: Path) -> None:
    (in_tmp / "program.lmp").write_text(LANGUAGE_EXAMPLE, encoding="utf-8")

    assert main(["check", "program.lmp"]) == EXIT_OK


def test_the_sample_mistake_reads_as_readme_shows(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    misspelled = LANGUAGE_EXAMPLE.replace(
        "chain_of_thought GenerateAnswer(", "chain_of_thought GenAnswer("
    )
    assert misspelled != LANGUAGE_EXAMPLE
    (in_tmp / "program.lmp").write_text(misspelled, encoding="utf-8")
    capsys.readouterr()

    assert main(["check", "program.lmp"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == SAMPLE_ERROR
