"""What lmc prints is seen, never obeyed: control characters from replies, data and artifacts
(`\\x1b]0;...\\x07` retitles the window, `\\x1b[2J` clears it, `\\r` overwrites the line, U+009B
is a CSI, U+202E reverses text) reach the terminal escaped, whichever command prints them.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from programs import QA_WITH_METRIC as QA

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from lmc.ir.graph import Demo, StepParams
from lmc.strings import printable

HOSTILE = "\x1b]0;pwned\x07 \x1b[2J cleared\rover \x9b31m \u202eesrever \ud800"
ESCAPED = "\\x1b]0;pwned\\x07 \\x1b[2J cleared\\rover \\x9b31m \\u202eesrever \\ud800"
# The value read from the reply: its lone surrogate is no character, and reads as U+FFFD.
PARSED = HOSTILE.replace("\ud800", "\ufffd")
# What must never reach a terminal raw: C0 controls but newline and tab, DEL, C1, bidi controls.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def reply(request: LMRequest) -> str:
    if any("unusable" in message.content for message in request.messages):
        return "not json " + HOSTILE
    # Raw control characters inside the JSON's string, as a careless server sends them.
    return '{"answer": "' + HOSTILE.replace("\r", "\\r") + '"}'


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(reply, identity="fake")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    return lm


def printed(capsys: pytest.CaptureFixture[str], code: int, *argv: str) -> tuple[str, str]:
    """Stdout and stderr of `lmc ARGV`, which must exit `code`; neither holds a raw control."""
    assert main(list(argv)) == code
    out, err = capsys.readouterr()
    assert RAW.search(out) is None, out
    assert RAW.search(err) is None, err
    return out, err


def test_printable_escapes_what_a_terminal_would_obey_and_keeps_lines() -> None:
    assert printable(HOSTILE) == ESCAPED
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)


def test_run_prints_a_hostile_reply_escaped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = printed(capsys, EXIT_OK, "run", "qa.lmp", "--input", "question=hi")

    assert out == f"answer: {printable(PARSED)}\n"


def test_run_json_escapes_too_and_still_reads_back_as_the_reply(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = printed(capsys, EXIT_OK, "run", "qa.lmp", "--input", "question=hi", "--json")

    assert "\\u001b]0;pwned\\u0007" in out
    assert json.loads(out) == {"answer": PARSED}


def test_a_failed_step_shows_its_reply_escaped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = printed(capsys, EXIT_FAILED, "run", "qa.lmp", "--input", "question=unusable")

    assert f"not json {ESCAPED}" in err


def test_a_dataset_run_prints_its_lines_escaped_and_writes_them_readable(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.jsonl").write_text('{"question": "a \\u001b[2J b"}\n', encoding="utf-8")

    out, _ = printed(capsys, EXIT_OK, "run", "qa.lmp", "--data", "in.jsonl")

    line = json.loads(out)
    assert line["inputs"] == {"question": "a \x1b[2J b"}
    assert line["outputs"] == {"answer": PARSED}
    printed(capsys, EXIT_OK, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")
    (written,) = Path("out.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(written)["outputs"] == {"answer": PARSED}


def test_eval_prints_predictions_and_errors_escaped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.jsonl").write_text(
        '{"question": "hi", "answer": "x"}\n{"question": "unusable", "answer": "x"}\n',
        encoding="utf-8",
    )

    out, _ = printed(capsys, EXIT_FAILED, "eval", "qa.lmp", "--data", "in.jsonl")

    first, second = out.splitlines()[:2]
    assert first.startswith("record 1: 0.000  ")
    assert json.loads(first.split("  ", 1)[1]) == {"answer": PARSED}
    assert second.startswith("record 2: 0.000  error: step 'gen'")


def test_trace_show_draws_prompts_and_replies_escaped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    printed(
        capsys,
        EXIT_OK,
        "run",
        "qa.lmp",
        "--input",
        "question=\x1b[31mred\x1b[0m",
        "--trace",
        "t.jsonl",
    )

    out, _ = printed(capsys, EXIT_OK, "trace", "show", "t.jsonl")

    assert "\\x1b[31mred\\x1b[0m" in out  # the question, in the prompt
    assert "\\x1b]0;pwned\\x07" in out  # the reply
    assert "\\x1b[2J" in out


def test_check_shows_a_source_line_escaped_with_the_caret_under_the_place(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bad.lmp").write_text(
        'signature S = "a -> b"\n'
        "program P(x: str) -> (y: str) {\n"
        '    s = predict S(a="\x1b[2J", c=x)\n'
        "    return y = s.b\n}\n",
        encoding="utf-8",
    )

    _, err = printed(capsys, EXIT_BAD_INPUT, "check", "bad.lmp")

    head, line, caret = err.splitlines()[:3]
    assert head == "bad.lmp:3:29: error: unknown argument 'c'; S takes one of 'a'"
    assert line == ' 3 |     s = predict S(a="\\x1b[2J", c=x)'
    assert line[caret.index("^") :].startswith("c=x")


def test_show_and_fmt_print_an_artifact_escaped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # What a compile learned came from an LM: an instruction-search proposal, a bootstrapped demo.
    program = lmc.loads(QA)
    graph = program.ir.copy()
    graph.params["gen"] = StepParams(
        instruction="Answer.\n" + HOSTILE,
        demos=(Demo((("question", "q \x1b[2J"), ("answer", HOSTILE))),),
    )
    lmc.Program(graph).save("qa.json")

    for argv in (["show", "qa.json", "--lmp"], ["fmt", "qa.json"]):
        out, _ = printed(capsys, EXIT_OK, *argv)
        assert "\\u001b]0;pwned\\u0007" in out
        assert "q \\u001b[2J" in out
    assert lmc.loads(out) == lmc.load("qa.json")
