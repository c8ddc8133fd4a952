"""Every bad input gets exit 2 and one line that says where (`file: record N`, `file: line N`,
`file:line:column`) and what was expected; never a traceback, and never after an LM call.

The inputs are the hostile ones: numbers longer than Python reads, JSON nested past any sense,
lone surrogates, and files that are something else (a folder, a file where a folder belongs).
`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

# JSON that Python's json module reads into a traceback, or into text no file can hold.
from programs import QA, TWICE

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, main

LONG_NUMBER = "1" * 5000
DEEP = "[" * 100_000 + "]" * 100_000
JUST_TOO_DEEP = "[" * 101 + "]" * 101
# Each hazard, and the start of what lmc says about it.
HAZARDS = {
    "long number": (LONG_NUMBER, "a number of 5,000 digits"),
    "deep": (DEEP, "JSON nested more than 100 levels deep"),
    "just too deep": (JUST_TOO_DEEP, "JSON nested more than 100 levels deep"),
    "lone surrogate": ('"\\ud800"', "a lone surrogate \\ud800 in a string"),
}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(lambda request: json.dumps({"answer": "yes", "doubled": 2}), identity="fake")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("twice.lmp").write_text(TWICE, encoding="utf-8")
    return lm


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `lmc ARGV`; it must exit 2 with one line on stderr and nothing on stdout. The line."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, err
    assert "Traceback" not in err
    assert out == ""
    assert err.startswith("lmc: error: "), err
    assert err.count("\n") == 1, err
    return err.removeprefix("lmc: error: ").rstrip("\n")


def record(value: str) -> str:
    """A record whose `question` is fine and whose `extra` field is `value` (JSON text)."""
    return '{"extra": ' + value + ', "question": "hi"}'


# JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_dataset_record_beyond_the_json_limits_exits_2_naming_the_record(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]
    Path("in.jsonl").write_text(record('"fine"') + "\n" + record(value) + "\n", encoding="utf-8")

    message = refused(capsys, "run", "qa.lmp", "--data", "in.jsonl")

    assert message.startswith(f"in.jsonl: record 2: {expected}")
    assert fake.requests == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            LONG_NUMBER,
            "a number of 5,000 digits at column 11; expected whole numbers of at most 4,300 digits",
        ),
        (
            DEEP,
            "JSON nested more than 100 levels deep; lmc reads at most 100 levels of arrays "
            "and objects",
        ),
        (
            '"\\ud800"',
            "a lone surrogate \\ud800 in a string; expected Unicode text (a \\ud800-\\udfff "
            "escape is only valid as half of a pair)",
        ),
    ],
)
def test_what_is_wrong_with_a_record_is_said_in_words(
    value: str, message: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.jsonl").write_text(record(value) + "\n", encoding="utf-8")

    assert (
        refused(capsys, "run", "qa.lmp", "--data", "in.jsonl") == f"in.jsonl: record 1: {message}"
    )


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_training_record_beyond_the_json_limits_stops_the_compile_before_any_call(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]
    lines = [json.dumps({"question": f"q{i}", "answer": "a"}) for i in range(3)]
    lines.insert(1, '{"question": "q", "answer": ' + value + "}")
    Path("train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    message = refused(
        capsys, "compile", "qa.lmp", "--train", "train.jsonl", "--metric", "exact_match(answer)"
    )

    assert message.startswith("train.jsonl: record 2: ")
    assert expected in message
    assert fake.requests == []
    assert not Path("QA.compiled.json").exists()


@pytest.mark.parametrize("hazard", HAZARDS)
def test_a_corpus_record_beyond_the_json_limits_exits_2_naming_the_record(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]
    Path("corpus.jsonl").write_text(
        '{"text": "Paris is in France."}\n{"text": "x", "id": ' + value + "}\n", encoding="utf-8"
    )

    message = refused(capsys, "index", "build", "corpus.jsonl")

    assert message.startswith("corpus.jsonl: record 2: ")
    assert expected in message


@pytest.mark.parametrize("hazard", ["long number", "deep", "just too deep"])
def test_an_input_beyond_the_json_limits_exits_2_naming_the_field(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]

    message = refused(capsys, "run", "twice.lmp", "--input", f"n={value}")

    assert message.startswith("--input n: ")
    assert expected in message
    assert fake.requests == []


def test_an_input_that_is_not_utf8_exits_2_naming_the_field(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bytes that are not UTF-8 reach sys.argv as lone surrogates (Python's surrogateescape).
    message = refused(capsys, "run", "qa.lmp", "--input", "question=caf\udce9")

    assert message == "--input question: not UTF-8 text; expected a UTF-8 value"


@pytest.mark.parametrize("hazard", HAZARDS)
def test_an_artifact_beyond_the_json_limits_exits_2_naming_the_file(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]
    lmc.loads(QA).save("qa.json")
    artifact = json.loads(Path("qa.json").read_text(encoding="utf-8"))
    artifact["datasets"] = {"train": "PLACEHOLDER"}
    text = json.dumps(artifact).replace('"PLACEHOLDER"', value)
    Path("qa.json").write_text(text, encoding="utf-8")

    message = refused(capsys, "run", "qa.json", "--input", "question=hi")

    assert message.startswith("qa.json: not an lmc artifact: ")
    assert expected in message
    assert fake.requests == []


@pytest.mark.parametrize("hazard", ["long number", "deep", "just too deep"])
def test_a_trace_line_beyond_the_json_limits_exits_2_naming_the_line(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value, expected = HAZARDS[hazard]
    Path("t.jsonl").write_text('{"step": ' + value + "}\n", encoding="utf-8")

    message = refused(capsys, "trace", "show", "t.jsonl")

    assert message.startswith("t.jsonl: line 1: ")
    assert expected in message


def test_a_record_longer_than_the_limit_exits_2_saying_the_limit(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.jsonl").write_text(record('"' + "x" * 16_000_000 + '"') + "\n", encoding="utf-8")

    message = refused(capsys, "run", "qa.lmp", "--data", "in.jsonl")

    assert message == (
        "in.jsonl: record 1: 16,000,031 characters long; lmc reads JSON of up to "
        "16,000,000 characters"
    )


def test_a_record_may_hold_a_line_separator_inside_a_string(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # U+2028 is valid inside a JSON string; a JSONL line ends at "\n" only.
    Path("in.jsonl").write_text('{"question": "a\u2028b"}\n', encoding="utf-8")

    assert main(["run", "qa.lmp", "--data", "in.jsonl"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["inputs"] == {"question": "a\u2028b"}


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ('{"step": "s", "backend": 5}', "not an lmc trace line"),
        (
            '{"step": "s", "backend": "json", "model": "m", "attempt": 1, "request": 5, '
            '"reply": "r", "prompt_tokens": 1, "completion_tokens": 1}',
            "t.jsonl: line 1: not an lmc trace line (AttributeError",
        ),
    ],
)
def test_a_trace_line_of_the_wrong_shape_exits_2_naming_the_line(
    contents: str, expected: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("t.jsonl").write_text(contents + "\n", encoding="utf-8")

    assert expected in refused(capsys, "trace", "show", "t.jsonl")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Path("t.jsonl").mkdir(), "t.jsonl: is a folder, expected a trace"),
        (
            lambda: Path("t.jsonl").write_bytes(b"\xff\xfe{}\n"),
            "t.jsonl: line 1: not UTF-8 text (byte 0xff at column 1)",
        ),
    ],
)
def test_a_trace_that_is_a_folder_or_not_text_exits_2(
    make: object, expected: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    make()  # type: ignore[operator]

    assert refused(capsys, "trace", "show", "t.jsonl").startswith(expected)


# text that is not UTF-8 --------------------------------------------------------------------------

# Three records, a blank line between the first two. The third says "été café": "été" in UTF-8,
# then the "é" of "café" as one Latin-1 byte, the 22nd character of its line (the 24th byte).
LATIN1_LINES = [
    b'{"question": "q1", "answer": "a", "text": "t"}',
    b"",
    b'{"question": "q2", "answer": "a", "text": "t"}',
    '{"question": "été caf'.encode() + b'\xe9", "answer": "a", "text": "t"}',
]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "qa.lmp", "--data", "latin1.jsonl"],  # read a record at a time
        ["eval", "qa.lmp", "--data", "latin1.jsonl", "--metric", "exact_match(answer)"],
        ["compile", "qa.lmp", "--train", "latin1.jsonl", "--metric", "exact_match(answer)"],
        ["index", "build", "latin1.jsonl"],
    ],
    ids=["run", "eval", "compile", "corpus"],
)
def test_a_byte_that_is_not_utf8_exits_2_naming_its_record_line_and_column(
    argv: list[str], fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("latin1.jsonl").write_bytes(b"\n".join(LATIN1_LINES) + b"\n")

    message = refused(capsys, *argv)

    assert message == "latin1.jsonl: record 3 (line 4): not UTF-8 text (byte 0xe9 at column 22)"
    assert fake.requests == []


# A file saved as UTF-16 or UTF-32 (Notepad's "Unicode", PowerShell's `>`): the encoding, the
# first byte lmc cannot read as UTF-8 and its column, and what the file looks like.
WIDE = {
    "UTF-16": ("utf-16", "byte 0xff at column 1", "UTF-16"),  # with its mark, little-endian
    "UTF-32": ("utf-32", "byte 0xff at column 1", "UTF-32"),
    # Without a mark, ASCII text in UTF-16 is UTF-8 with a NUL beside each character.
    "UTF-16LE, no mark": ("utf-16-le", "byte 0x00 at column 2", "UTF-16"),
    "UTF-16BE, no mark": ("utf-16-be", "byte 0x00 at column 1", "UTF-16"),
}


@pytest.mark.parametrize("wide", WIDE)
@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["run", "qa.lmp", "--data", "wide.jsonl"], "record 1 (line 1)"),
        (
            ["eval", "qa.lmp", "--data", "wide.jsonl", "--metric", "exact_match(answer)"],
            "record 1 (line 1)",
        ),
        (["index", "build", "wide.jsonl"], "record 1 (line 1)"),
        (["trace", "show", "wide.jsonl"], "line 1"),
    ],
    ids=["run", "eval", "corpus", "trace"],
)
def test_a_utf16_or_utf32_jsonl_file_exits_2_saying_to_save_it_as_utf8(
    wide: str, argv: list[str], where: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    encoding, byte, name = WIDE[wide]
    text = '{"question": "q1", "answer": "a", "text": "t"}\n{"question": "q2"}\n'
    Path("wide.jsonl").write_bytes(text.encode(encoding))

    assert refused(capsys, *argv) == (
        f"wide.jsonl: {where}: not UTF-8 text ({byte}); the file looks like {name}: save it "
        "as UTF-8"
    )
    assert fake.requests == []


@pytest.mark.parametrize("command", ["check", "fmt", "run"])
def test_a_utf16_program_exits_2_saying_to_save_it_as_utf8(
    command: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("wide.lmp").write_bytes(QA.encode("utf-16"))
    argv = [command, "wide.lmp", *(["--input", "question=hi"] if command == "run" else [])]

    assert refused(capsys, *argv) == (
        "wide.lmp:1:1: not UTF-8 text (byte 0xff); the file looks like UTF-16: save it as UTF-8"
    )


def test_a_utf16_artifact_exits_2_saying_to_save_it_as_utf8(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    lmc.loads(QA).save("qa.json")
    Path("wide.json").write_bytes(Path("qa.json").read_text(encoding="utf-8").encode("utf-16"))

    assert refused(capsys, "run", "wide.json", "--input", "question=hi") == (
        "wide.json: line 1: not UTF-8 text (byte 0xff at column 1); the file looks like "
        "UTF-16: save it as UTF-8"
    )


def test_a_trace_byte_that_is_not_utf8_exits_2_naming_its_line_and_column(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("latin1.jsonl").write_bytes(b"\n".join(LATIN1_LINES) + b"\n")

    message = refused(capsys, "trace", "show", "latin1.jsonl")

    assert message == "latin1.jsonl: line 4: not UTF-8 text (byte 0xe9 at column 22)"


# The JSON error at the "x": column 14 counted from the "{", not 15 counted from the mark.
BOM_RECORD_ERROR = (
    "bom.jsonl: record 1: expected a JSON object, found invalid JSON (Expecting value at column 14)"
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "qa.lmp", "--data", "bom.jsonl"], BOM_RECORD_ERROR),
        (["eval", "qa.lmp", "--data", "bom.jsonl", "--metric", "f1(answer)"], BOM_RECORD_ERROR),
        (["index", "build", "bom.jsonl"], BOM_RECORD_ERROR),
        (["trace", "show", "bom.jsonl"], "bom.jsonl: line 1: not JSON (Expecting value)"),
    ],
    ids=["run", "eval", "corpus", "trace"],
)
def test_a_leading_byte_order_mark_is_not_read_as_part_of_the_first_record(
    argv: list[str], expected: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bom.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"question": x}\n')

    assert refused(capsys, *argv) == expected


# .lmp text -------------------------------------------------------------------------------------


def program_error(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Run `lmc ARGV`; it must exit 2 with a program's diagnostics. Their lines."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, err
    assert "Traceback" not in err
    assert out == ""
    return err.splitlines()


@pytest.mark.parametrize(
    ("nested", "where"),
    [
        ("list[" * 300 + "str" + "]" * 300, "deep.lmp:2:514"),
        ("str", None),
    ],
    ids=["type", "expression"],
)
def test_a_program_nested_hundreds_deep_exits_2_at_the_place(
    nested: str, where: str | None, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    value = "x" + " + x" * 5000 if where is None else "x"
    Path("deep.lmp").write_text(
        'signature S = "a: list[str] -> b"\n'
        f"program P(x: {nested if where else 'list[str]'}) -> (y: str) {{\n"
        f"    z = {value}\n    s = predict S(a=z)\n    return y = s.b\n}}\n",
        encoding="utf-8",
    )

    for command in ("check", "fmt", "show", "run"):
        lines = program_error(capsys, command, "deep.lmp")
        assert lines[0] == (
            f"{where or 'deep.lmp:3:9'}: error: nested more than 100 levels deep; lmc reads at "
            "most 100 levels of types, lists, loops, retrieves and '+'"
        )


def test_an_artifact_whose_program_nests_too_deep_exits_2_naming_the_artifact(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    lmc.loads(QA).save("qa.json")
    artifact = json.loads(Path("qa.json").read_text(encoding="utf-8"))
    artifact["program"] = artifact["program"].replace(
        "gen = predict Answer(question=question)",
        "deep = "
        + "[" * 200
        + "question"
        + "]" * 200
        + "\n    gen = predict Answer(question=question)",
    )
    Path("qa.json").write_text(json.dumps(artifact), encoding="utf-8")

    message = refused(capsys, "run", "qa.json", "--input", "question=hi")

    assert message.startswith("qa.json: its program does not check: ")
    assert "nested more than 100 levels deep" in message


def test_three_nested_loops_of_64_exit_2_at_once_naming_the_limit(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("loops.lmp").write_text(
        'signature S = "a -> b"\n\n'
        "program P(x: str) -> (y: str) {\n"
        "    for i in range(64) {\n        for j in range(64) {\n            for k in range(64) {\n"
        "                s = predict S(a=x)\n                x = s.b\n"
        "            }\n        }\n    }\n    return y = x\n}\n",
        encoding="utf-8",
    )

    lines = program_error(capsys, "check", "loops.lmp")

    assert lines == [
        "loops.lmp:4:5: error: this loop unrolls to more than 10,000 nodes (64 x 64 x 64 copies "
        "of the loop body); lmc checks programs of up to 10,000 nodes unrolled: use fewer "
        "iterations",
        " 4 |     for i in range(64) {",
        "   |     ^",
    ]


# files to write ----------------------------------------------------------------------------------

# Each command that writes a file, with the option naming it as PATH.
WRITERS = {
    "run --out": ["run", "qa.lmp", "--data", "in.jsonl", "--out", "PATH"],
    "run --trace": ["run", "qa.lmp", "--input", "question=hi", "--trace", "PATH"],
    "eval --out": [
        "eval",
        "qa.lmp",
        "--data",
        "in.jsonl",
        "--metric",
        "exact_match(answer)",
        "--out",
        "PATH",
    ],
    "eval --trace": [
        "eval",
        "qa.lmp",
        "--data",
        "in.jsonl",
        "--metric",
        "exact_match(answer)",
        "--trace",
        "PATH",
    ],
    "compile -o": [
        "compile",
        "qa.lmp",
        "--train",
        "in.jsonl",
        "--metric",
        "exact_match(answer)",
        "-o",
        "PATH",
    ],
    "opt -o": ["opt", "qa.lmp", "-p", "dead-steps", "-o", "PATH"],
    "opt --train -o": [
        "opt",
        "qa.lmp",
        "-p",
        "bootstrap-demos",
        "--train",
        "in.jsonl",
        "--metric",
        "exact_match(answer)",
        "-o",
        "PATH",
    ],
    "show -o": ["show", "qa.lmp", "-o", "PATH"],
}


def write_dataset() -> None:
    Path("in.jsonl").write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": "yes"}) + "\n" for i in range(4)),
        encoding="utf-8",
    )


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("folder.json", "it is a folder; expected a file name"),
        ("afile.txt/out.json", "afile.txt is a file, not a folder"),
        ("afile.txt/deeper/out.json", "afile.txt is a file, not a folder"),
    ],
    ids=["a folder", "under a file", "deeper under a file"],
)
def test_a_file_that_cannot_be_written_exits_2_before_any_lm_call(
    writer: str, path: str, why: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    Path("folder.json").mkdir()
    Path("afile.txt").write_text("a file", encoding="utf-8")
    argv = [path if a == "PATH" else a for a in WRITERS[writer]]

    assert refused(capsys, *argv) == f"{path}: cannot write it ({why})"
    assert fake.requests == []


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    ("leads_to", "why"),
    [
        ("afile.txt/out.json", "it links to afile.txt/out.json; afile.txt is a file, not a folder"),
        ("link.json", "a symbolic link in a loop; expected one that leads to a file"),
    ],
    ids=["under a file", "a loop"],
)
def test_a_link_that_cannot_be_written_where_it_leads_exits_2_before_any_lm_call(
    writer: str, leads_to: str, why: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # The link's own folder could be written; the file goes where the link leads.
    write_dataset()
    Path("afile.txt").write_text("a file", encoding="utf-8")
    Path("link.json").symlink_to(leads_to)
    argv = ["link.json" if a == "PATH" else a for a in WRITERS[writer]]

    assert refused(capsys, *argv) == f"link.json: cannot write it ({why})"
    assert fake.requests == []
    assert Path("afile.txt").read_text(encoding="utf-8") == "a file"


def test_a_compile_checks_its_default_artifact_path_before_any_lm_call(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    Path("QA.compiled.json").mkdir()

    message = refused(
        capsys, "compile", "qa.lmp", "--train", "in.jsonl", "--metric", "exact_match(answer)"
    )

    assert message == "QA.compiled.json: cannot write it (it is a folder; expected a file name)"
    assert fake.requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_without_write_permission_exits_2_before_any_lm_call(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    Path("locked").mkdir()
    Path("locked").chmod(0o500)
    try:
        message = refused(
            capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "locked/out.jsonl"
        )
    finally:
        Path("locked").chmod(0o700)

    assert message == "locked/out.jsonl: cannot write it (no permission to write in locked)"
    assert fake.requests == []


def test_a_missing_folder_for_an_output_is_made(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()

    assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "new/sub/out.jsonl"]) == 0
    assert len(Path("new/sub/out.jsonl").read_text(encoding="utf-8").splitlines()) == 4


@pytest.mark.parametrize("writer", WRITERS)
def test_a_device_as_an_output_is_written_and_stays_a_device(
    writer: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # Root's `lmc eval --out /dev/null` (and compile -o, opt -o) put a regular file where
    # /dev/null was; `lmc run --out /dev/null` was refused. A node like /dev/null stands in
    # for it: a regression must not break the real one.
    write_dataset()
    try:
        os.mknod("null.dot", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    before = set(os.listdir()) | {"lmc-cache"}  # what an LM call caches goes there

    assert main([("null.dot" if a == "PATH" else a) for a in WRITERS[writer]]) == 0, (
        capsys.readouterr().err
    )
    assert stat.S_ISCHR(os.lstat("null.dot").st_mode)
    assert set(os.listdir()) <= before  # nothing written beside it


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_user_who_may_not_write_in_dev_may_run_with_out_dev_null(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()

    assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "/dev/null"]) == 0


def test_a_run_writes_its_results_to_a_pipe_as_they_finish(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pipe holds no earlier results to resume from, and is not replaced by a file.
    write_dataset()
    os.mkfifo("out.fifo")
    reader = os.open("out.fifo", os.O_RDONLY | os.O_NONBLOCK)  # so that the run does not wait
    try:
        assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "out.fifo"]) == 0
        lines = os.read(reader, 100_000).decode("utf-8").splitlines()
    finally:
        os.close(reader)

    assert sorted(json.loads(line)["record"] for line in lines) == [1, 2, 3, 4]
    assert stat.S_ISFIFO(os.lstat("out.fifo").st_mode)


# Each command writing over a file it reads: the arguments, and what lmc says. `in.jsonl` is the
# data, `dev.jsonl` the dev set, `link.jsonl` a symbolic link to the data, `again.jsonl` a hard
# link to it.
EVAL_DATA = ["eval", "qa.lmp", "--data", "in.jsonl", "--metric", "exact_match(answer)"]
COMPILE_DATA = ["compile", "qa.lmp", "--train", "in.jsonl", "--metric", "exact_match(answer)"]
OVER_INPUTS = {
    "run --out the data": (
        ["run", "qa.lmp", "--data", "in.jsonl", "--out", "in.jsonl", "--no-resume"],
        "--out in.jsonl is the --data file; write the results elsewhere",
    ),
    "run --out the data, resumed": (
        ["run", "qa.lmp", "--data", "in.jsonl", "--out", "./in.jsonl"],
        "--out ./in.jsonl is the --data file; write the results elsewhere",
    ),
    "run --trace the data": (
        ["run", "qa.lmp", "--data", "in.jsonl", "--trace", "link.jsonl"],
        "--trace link.jsonl is the --data file; write the trace elsewhere",
    ),
    "run --trace the program": (
        ["run", "qa.lmp", "--input", "question=hi", "--trace", "qa.lmp"],
        "--trace qa.lmp is the program file; write the trace elsewhere",
    ),
    "eval --out the data": (
        [*EVAL_DATA, "--out", "again.jsonl"],
        "--out again.jsonl is the --data file; write the results elsewhere",
    ),
    "eval --report the data": (
        [*EVAL_DATA, "--report", "in.jsonl"],
        "--report in.jsonl is the --data file; write the report elsewhere",
    ),
    "compile -o the dev set": (
        [*COMPILE_DATA, "--dev", "dev.jsonl", "-o", "dev.jsonl"],
        "-o dev.jsonl is the --dev file; write the artifact elsewhere",
    ),
    "compile --report the program": (
        [*COMPILE_DATA, "--report", "qa.lmp"],
        "--report qa.lmp is the program file; write the report elsewhere",
    ),
    "compile's default -o the training set": (
        ["compile", "qa.lmp", "--train", "QA.compiled.json", "--metric", "exact_match(answer)"],
        "QA.compiled.json, the default -o, is the --train file; write the artifact elsewhere "
        "with -o FILE",
    ),
    "opt -o the program": (
        ["opt", "qa.lmp", "-p", "dead-steps", "-o", "qa.lmp"],
        "-o qa.lmp is the program file; write the program elsewhere",
    ),
    "opt -o the training set": (
        [
            "opt",
            "qa.lmp",
            "-p",
            "bootstrap-demos",
            "--train",
            "in.jsonl",
            "-o",
            "in.jsonl",
            "--metric",
            "exact_match(answer)",
        ],
        "-o in.jsonl is the --train file; write the program elsewhere",
    ),
    "show -o the program": (
        ["show", "qa.lmp", "-o", "qa.lmp"],
        "-o qa.lmp is the program file; write the picture elsewhere",
    ),
    "report -o the artifact": (
        ["report", "qa.json", "-o", "qa.json"],
        "-o qa.json is the program file; write the report elsewhere",
    ),
}


@pytest.mark.parametrize("case", OVER_INPUTS)
def test_an_output_that_is_a_file_the_command_reads_exits_2_and_leaves_it_whole(
    case: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    Path("dev.jsonl").write_bytes(Path("in.jsonl").read_bytes())
    Path("QA.compiled.json").write_bytes(Path("in.jsonl").read_bytes())
    Path("link.jsonl").symlink_to("in.jsonl")
    os.link("in.jsonl", "again.jsonl")
    lmc.loads(QA).save("qa.json")

    refused_leaving_every_file_as_it_was(capsys, fake, *OVER_INPUTS[case])


def refused_leaving_every_file_as_it_was(
    capsys: pytest.CaptureFixture[str], fake: FakeLM, argv: list[str], message: str
) -> None:
    """`lmc ARGV` exits 2 with `message` before any LM call, and no file in the folder is
    written, emptied or made."""
    before = {path: path.read_bytes() for path in Path().iterdir()}

    assert refused(capsys, *argv) == message
    assert fake.requests == []
    assert {path: path.read_bytes() for path in Path().iterdir()} == before


# Each command writing two of its outputs to one file.
OVER_OUTPUTS = {
    "run --trace the --out file": (
        ["run", "qa.lmp", "--data", "in.jsonl", "--out", "r.jsonl", "--trace", "./r.jsonl"],
        "--trace ./r.jsonl is the --out file too; write the trace elsewhere",
    ),
    "eval --report the --out file": (
        [*EVAL_DATA, "--out", "r.jsonl", "--report", "r.jsonl"],
        "--report r.jsonl is the --out file too; write the report elsewhere",
    ),
    "compile --report the artifact": (
        [*COMPILE_DATA, "-o", "qa.json", "--report", "qa.json"],
        "--report qa.json is the -o file too; write the report elsewhere",
    ),
}


@pytest.mark.parametrize("case", OVER_OUTPUTS)
def test_two_outputs_in_one_file_exit_2_before_any_lm_call(
    case: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    Path("r.jsonl").write_text("earlier results\n", encoding="utf-8")

    refused_leaving_every_file_as_it_was(capsys, fake, *OVER_OUTPUTS[case])


# the cache ---------------------------------------------------------------------------------------


def test_a_corrupt_cache_file_exits_2_saying_what_to_do_and_cache_clear_removes_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    isolated_cache.mkdir()
    cache_file = isolated_cache / "lm-cache.sqlite"
    cache_file.write_bytes(bytes(range(256)) * 40)
    expected = (
        f"{cache_file}: the LM cache is corrupt (file is not a database); remove it with "
        "`lmc cache clear` (or delete the file), or pass --no-cache"
    )

    assert refused(capsys, "run", "qa.lmp", "--input", "question=hi") == expected
    assert refused(capsys, "cache", "stats") == expected
    assert fake.requests == []
    assert main(["run", "qa.lmp", "--input", "question=hi", "--no-cache"]) == 0
    capsys.readouterr()

    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == (
        f"removed {cache_file}: it was corrupt (not a database sqlite can read)\n"
    )
    assert main(["run", "qa.lmp", "--input", "question=hi"]) == 0


def test_a_cache_damaged_inside_exits_2_at_its_first_use(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    # A real cache whose header is intact and whose pages are not: sqlite opens it, then finds it
    # malformed at the first read.
    for question in range(50):
        assert main(["run", "qa.lmp", "--input", f"question={'x' * 500} {question}"]) == 0
    capsys.readouterr()
    cache_file = isolated_cache / "lm-cache.sqlite"
    with sqlite3.connect(cache_file) as connection:  # the write-ahead log folded into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(cache_file.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    cache_file.write_bytes(bytes(data))
    requests = len(fake.requests)

    message = refused(capsys, "run", "qa.lmp", "--input", "question=hi")

    assert message.startswith(f"{cache_file}: the LM cache is corrupt (")
    assert message.endswith(
        "remove it with `lmc cache clear` (or delete the file), or pass --no-cache"
    )
    assert len(fake.requests) == requests


def test_a_cache_folder_that_is_a_file_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("not-a-folder").write_text("", encoding="utf-8")
    monkeypatch.setenv("LMC_CACHE_DIR", "not-a-folder")
    Path("corpus.jsonl").write_text('{"text": "Paris is in France."}\n', encoding="utf-8")
    expected = (
        "not-a-folder: is a file, not a folder; lmc keeps its caches there: set LMC_CACHE_DIR "
        "to a folder it may write"
    )

    assert refused(capsys, "run", "qa.lmp", "--input", "question=hi") == expected
    assert refused(capsys, "index", "build", "corpus.jsonl") == expected
    assert fake.requests == []
    # What needs no cache still works.
    assert main(["check", "qa.lmp"]) == 0


def test_a_folder_where_the_cache_file_goes_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    (isolated_cache / "lm-cache.sqlite").mkdir(parents=True)

    assert refused(capsys, "run", "qa.lmp", "--input", "question=hi") == (
        f"{isolated_cache / 'lm-cache.sqlite'}: is a folder, where lmc keeps its LM cache file; "
        "remove it, or set LMC_CACHE_DIR to another folder"
    )


# model files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: Path("model.gguf").write_text("hello, not a model\n", encoding="utf-8"),
            "model.gguf: not a GGUF model file (it does not start with the bytes 'GGUF'); "
            "expected a GGUF model file (--lm local:PATH.gguf)",
        ),
        (
            lambda: Path("model.gguf").mkdir(),
            "model.gguf: is a folder; expected a GGUF model file (--lm local:PATH.gguf)",
        ),
        (
            lambda: None,
            "model.gguf: no such file; expected a GGUF model file (--lm local:PATH.gguf)",
        ),
        (
            lambda: Path("model.gguf").write_bytes(b""),
            "model.gguf: not a GGUF model file (it does not start with the bytes 'GGUF'); "
            "expected a GGUF model file (--lm local:PATH.gguf)",
        ),
    ],
    ids=["a text file", "a folder", "missing", "empty"],
)
def test_a_local_model_that_is_not_a_gguf_file_exits_2_before_loading(
    make: object,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    make()  # type: ignore[operator]
    loaded: list[object] = []
    monkeypatch.setattr("lmc.backends.clients.local._load", loaded.append)

    assert (
        refused(capsys, "run", "qa.lmp", "--input", "question=hi", "--lm", "local:model.gguf")
        == expected
    )
    assert loaded == []


# options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "qa.lmp", "--train", "in.jsonl", "--metric", "exact_match(answer)", "-p", ""],
        ["opt", "qa.lmp", "-p", ""],
        ["opt", "qa.lmp", "-p", "", "--train", "in.jsonl", "--metric", "exact_match(answer)"],
    ],
    ids=["compile", "opt", "opt --train"],
)
def test_an_empty_pipeline_is_an_error_not_the_default(
    argv: list[str], fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()

    assert refused(capsys, *argv) == (
        "the pipeline is empty; expected passes by name, separated by commas, such as "
        "dead-steps,bootstrap-demos{max_demos=4} (leave -p out for the default)"
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "qa.lmp", "--train", "in.jsonl", "--metric", ""],
        ["eval", "qa.lmp", "--data", "in.jsonl", "--metric", " "],
        ["opt", "qa.lmp", "-p", "bootstrap-demos", "--train", "in.jsonl", "--metric", ""],
    ],
    ids=["compile", "eval", "opt"],
)
def test_an_empty_metric_is_an_error_not_the_default(
    argv: list[str], fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()
    # The file declares a metric: an empty --metric must not quietly mean it.
    Path("qa.lmp").write_text(QA + "\nmetric exact_match(answer)\n", encoding="utf-8")

    assert refused(capsys, *argv) == (
        "the metric is empty; expected one such as exact_match(answer) (NAME(FIELD)), or "
        "package.module:function"
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("argv", "option", "minimum"),
    [
        (["compile", "qa.lmp", "--train", "in.jsonl", "--concurrency", "0"], "--concurrency", 1),
        (["compile", "qa.lmp", "--train", "in.jsonl", "--concurrency", "-3"], "--concurrency", 1),
        (["run", "qa.lmp", "--input", "question=hi", "--concurrency", "0"], "--concurrency", 1),
        (["eval", "qa.lmp", "--data", "in.jsonl", "--concurrency", "0"], "--concurrency", 1),
        (["compile", "qa.lmp", "--train", "in.jsonl", "--budget-calls", "-1"], "--budget-calls", 0),
        (["trace", "show", "t.jsonl", "-n", "-1"], "-n", 0),
    ],
)
def test_a_count_below_its_minimum_is_refused_by_the_parser(
    argv: list[str], option: str, minimum: int, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dataset()

    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f"error: argument {option}: expected a whole number of {minimum} or more, "
        f"found '{argv[-1]}'"
    )
    assert fake.requests == []


def test_fmt_write_into_a_folder_it_cannot_write_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("messy.lmp").write_text(QA.replace("    gen", "  gen"), encoding="utf-8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("lmc.files.temporary_file", refuse)

    assert refused(capsys, "fmt", "-w", "messy.lmp") == (
        "messy.lmp: cannot write it (Permission denied)"
    )


@pytest.mark.parametrize("hazard", ["long number", "deep"])
def test_an_earlier_results_file_beyond_the_json_limits_exits_2_naming_the_line(
    hazard: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # A rerun onto --out reads what the earlier run wrote, to go on where it stopped.
    write_dataset()
    value, _ = HAZARDS[hazard]
    Path("out.jsonl").write_text('{"record": 1, "extra": ' + value + "}\n", encoding="utf-8")

    message = refused(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")

    assert message.startswith("out.jsonl: line 1: not a result line of lmc run")
    assert fake.requests == []


def test_a_reply_with_a_lone_surrogate_is_read_with_a_replacement_character_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lm = FakeLM(lambda request: '{"answer": "half \\ud800 a pair"}', identity="fake")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    write_dataset()

    assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl"]) == 0
    lines = Path("out.jsonl").read_text(encoding="utf-8").splitlines()
    # No character, and no UTF-8 file could hold it: U+FFFD, as a decoder puts for bad bytes.
    assert json.loads(lines[0])["outputs"] == {"answer": "half \ufffd a pair"}
    calls = len(lm.requests)
    assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl"]) == 0
    assert len(lm.requests) == calls  # every record was done: none is run again


def test_a_corpus_without_a_word_bm25_can_index_exits_2_saying_so(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # bm25s raised ValueError on an empty vocabulary, a traceback for what is a fault of the input.
    Path("corpus.jsonl").write_text('{"text": "a"}\n{"text": "the"}\n', encoding="utf-8")

    message = refused(capsys, "index", "build", "corpus.jsonl")

    assert message == (
        "corpus.jsonl: no passage has a word bm25 can index (only stop words such as 'the', or "
        "no words at all, in 'text')"
    )
