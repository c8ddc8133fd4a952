"""`lmc --help` and every command's `--help` end with a worked example, and each example is a
command line lmc accepts as written."""

from __future__ import annotations

import shlex

import pytest

from lmc.cli.main import COMMANDS, EXAMPLES, Command, parser


def help_of(words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        parser().parse_args([*words, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.words)
def test_each_commands_help_ends_with_its_example(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    words, example = command.words.split(), command.example

    assert help_of(words, capsys).endswith(f"example:\n  {example}\n")
    assert shlex.split(example)[1 : 1 + len(words)] == words


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.words)
def test_each_example_is_a_command_line_lmc_accepts(command: Command) -> None:
    argv = shlex.split(command.example)[1:]

    parsed = parser().parse_args(argv)

    assert parsed.handler == command.handler


def test_lmc_help_shows_a_session_of_examples(capsys: pytest.CaptureFixture[str]) -> None:
    shown = help_of([], capsys)
    lines = [line.strip() for line in EXAMPLES.splitlines() if line.startswith("  lmc ")]

    assert EXAMPLES in shown
    assert len(lines) == 4
    for line in lines:
        parser().parse_args(shlex.split(line)[1:])
