"""The `lmc` command line as users and scripts see it: exit codes, what goes to stdout and
stderr, and which files it writes (see `../shared/spec/cli.md`).

Tests run `lmc.cli.main` in-process from inside `tmp_path`, so paths are short relative names.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

import lmc
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

CANONICAL = """\
signature Shorten = "text -> summary"

program Summary(text: str) -> (summary: str) {
    step = predict Shorten(text=text)
    return summary = step.summary
}
"""

NOT_CANONICAL = """\
signature Shorten = "text -> summary"
program Summary(text: str) -> (summary: str) {
  step = predict Shorten(text=text)
     return summary = step.summary }
"""

SYNTAX_ERROR = """\
signature Shorten = "text -> summary"
program Summary(text: str) -> (summary: str) {
    step = predict Shorten(text=text
    return summary = step.summary
}
"""

SEVERAL_ERRORS = """\
signature S = "a -> b"
program P(x: str) -> (y: str, z: str) {
    s = predict T(a=x)
    t = predict S(a=x, c=x)
    return y = t.b
}
signature S = "q -> r"
"""

RAG = """\
signature GenerateQuery {
    \"\"\"Write a search query for the missing facts.\"\"\"
    input  context:  list[str]
    input  question: str
    output query:    str
}

signature GenerateAnswer {
    \"\"\"Answer the question from the context.\"\"\"
    input  context:  list[str]
    input  question: str
    output answer:   str
}

index wiki = bm25("corpus.jsonl")

program RAG(question: str) -> (answer: str) {
    search = predict GenerateQuery(context=[], question=question)
    passages = retrieve wiki(query=search.query, k=2)
    gen = chain_of_thought GenerateAnswer(context=passages, question=question)
    return answer = gen.answer
}
"""

TWO_PROGRAMS = """\
signature S = "a -> b"

program First(x: str) -> (y: str) {
    s = predict S(a=x)
    return y = s.b
}

program Second(x: str) -> (y: str) {
    s = chain_of_thought S(a=x)
    return y = s.b
}
"""

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_locations(stderr: str) -> list[str]:
    return re.findall(r"^(\S+:\d+:\d+): error: ", stderr, flags=re.MULTILINE)


# check -------------------------------------------------------------------------------------------


def test_check_valid_file_exits_0_with_an_ok_line(capsys: pytest.CaptureFixture[str]) -> None:
    write("ok.lmp", CANONICAL)
    code, out, err = run(capsys, "check", "ok.lmp")
    assert code == EXIT_OK
    assert out == "ok.lmp: ok (1 program, 1 step)\n"
    assert err == ""


def test_check_reports_every_error_in_source_order(capsys: pytest.CaptureFixture[str]) -> None:
    write("many.lmp", SEVERAL_ERRORS)
    code, out, err = run(capsys, "check", "many.lmp")
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert error_locations(err) == [
        "many.lmp:2:31",
        "many.lmp:3:17",
        "many.lmp:4:24",
        "many.lmp:7:11",
    ]
    assert "result 'z' is never returned" in err
    assert "unknown signature 'T'" in err
    assert "unknown argument 'c'" in err
    assert "duplicate declaration 'S'" in err
    assert err.rstrip().endswith("4 errors")


def test_check_reports_errors_of_every_file_and_still_checks_the_good_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("many.lmp", SEVERAL_ERRORS)
    write("broken.lmp", SYNTAX_ERROR)
    write("ok.lmp", CANONICAL)
    code, out, err = run(capsys, "check", "many.lmp", "ok.lmp", "broken.lmp")
    assert code == EXIT_BAD_INPUT
    assert out == "ok.lmp: ok (1 program, 1 step)\n"
    assert len(error_locations(err)) == 5
    assert "broken.lmp:4:5: error: " in err


def test_check_syntax_error_exits_2_with_its_location(capsys: pytest.CaptureFixture[str]) -> None:
    write("broken.lmp", SYNTAX_ERROR)
    code, _, err = run(capsys, "check", "broken.lmp")
    assert code == EXIT_BAD_INPUT
    assert error_locations(err) == ["broken.lmp:4:5"]
    assert "found 'return'" in err


def test_check_missing_file_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "nowhere.lmp")
    assert code == EXIT_BAD_INPUT
    assert err == "lmc: error: nowhere.lmp: no such file\n"


def test_check_folder_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    Path("programs").mkdir()
    code, _, err = run(capsys, "check", "programs")
    assert code == EXIT_BAD_INPUT
    assert err.startswith("lmc: error: programs: is a folder")


def test_check_non_utf8_file_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    Path("latin1.lmp").write_bytes('signature S = "caf\xe9 -> b"\n'.encode("latin-1"))
    code, _, err = run(capsys, "check", "latin1.lmp")
    assert code == EXIT_BAD_INPUT
    # where an editor would go to fix it: the line and column of the first bad byte
    assert err == "lmc: error: latin1.lmp:1:19: not UTF-8 text (byte 0xe9)\n"


def test_check_reads_a_file_a_windows_editor_saved_with_a_byte_order_mark(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("ok.lmp").write_bytes(b"\xef\xbb\xbf" + CANONICAL.encode())
    Path("broken.lmp").write_bytes(b"\xef\xbb\xbf" + b'signature S = "a -> b" x\n')

    code, out, err = run(capsys, "check", "ok.lmp", "broken.lmp")

    assert code == EXIT_BAD_INPUT
    assert out == "ok.lmp: ok (1 program, 1 step)\n"
    # columns count from the first character, not from the mark
    assert error_locations(err) == ["broken.lmp:1:24"]


def test_lmc_load_reads_a_file_saved_with_a_byte_order_mark() -> None:
    Path("ok.lmp").write_bytes(b"\xef\xbb\xbf" + CANONICAL.encode())

    assert lmc.load("ok.lmp").name == "Summary"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("latin1.lmp", lambda p: p.write_bytes('signature S = "caf\xe9"\n'.encode("latin-1"))),
        ("wide.lmp", lambda p: p.write_bytes(CANONICAL.encode("utf-16"))),
        ("nowhere.lmp", lambda p: None),
        ("programs.lmp", lambda p: p.mkdir()),
    ],
    ids=["latin-1", "utf-16", "missing", "folder"],
)
def test_lmc_load_says_of_a_bad_file_what_lmc_check_says(
    capsys: pytest.CaptureFixture[str], name: str, make: Callable[[Path], object]
) -> None:
    make(Path(name))
    _, _, err = run(capsys, "check", name)

    with pytest.raises(lmc.InputError) as raised:
        lmc.load(name)

    assert err == f"lmc: error: {raised.value}\n"
    assert err.startswith(f"lmc: error: {name}")


def test_console_script_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    """The installed entry point, not just `main`: its exit status is what shells see."""
    write("bad.lmp", SEVERAL_ERRORS)
    lmc = Path(sys.executable).parent / "lmc"
    result = subprocess.run(
        [str(lmc), "check", "bad.lmp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert re.search(r"^bad\.lmp:2:31: error: ", result.stderr, flags=re.MULTILINE)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# fmt ---------------------------------------------------------------------------------------------


def test_fmt_prints_the_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    write("messy.lmp", NOT_CANONICAL)
    code, out, err = run(capsys, "fmt", "messy.lmp")
    assert code == EXIT_OK
    assert out == CANONICAL
    assert err == ""
    assert Path("messy.lmp").read_text(encoding="utf-8") == NOT_CANONICAL


def test_fmt_check_exits_1_for_a_file_that_is_not_canonical(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("messy.lmp", NOT_CANONICAL)
    code, out, _ = run(capsys, "fmt", "--check", "messy.lmp")
    assert code == EXIT_FAILED
    assert out == "would reformat messy.lmp\n"
    assert Path("messy.lmp").read_text(encoding="utf-8") == NOT_CANONICAL


def test_fmt_check_exits_0_for_a_canonical_file(capsys: pytest.CaptureFixture[str]) -> None:
    write("clean.lmp", CANONICAL)
    code, out, _ = run(capsys, "fmt", "--check", "clean.lmp")
    assert code == EXIT_OK
    assert out == ""


def test_fmt_check_names_only_the_files_it_would_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("clean.lmp", CANONICAL)
    write("messy.lmp", NOT_CANONICAL)
    code, out, _ = run(capsys, "fmt", "--check", "clean.lmp", "messy.lmp")
    assert code == EXIT_FAILED
    assert out == "would reformat messy.lmp\n"


def test_fmt_write_rewrites_the_file_to_the_canonical_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write("messy.lmp", NOT_CANONICAL)
    code, _, _ = run(capsys, "fmt", "-w", "messy.lmp")
    assert code == EXIT_OK
    assert path.read_text(encoding="utf-8") == CANONICAL
    assert run(capsys, "fmt", "--check", "messy.lmp")[0] == EXIT_OK


def test_fmt_write_leaves_a_canonical_file_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    path = write("clean.lmp", CANONICAL)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    code, out, _ = run(capsys, "fmt", "-w", "clean.lmp")
    assert code == EXIT_OK
    assert out == ""
    assert path.read_bytes() == CANONICAL.encode()
    assert path.stat().st_mtime_ns == 1_000_000_000


@pytest.mark.parametrize("mode", [[], ["--check"], ["-w"]], ids=["print", "check", "write"])
def test_fmt_syntax_error_exits_2_and_leaves_the_file_alone(
    capsys: pytest.CaptureFixture[str], mode: list[str]
) -> None:
    path = write("broken.lmp", SYNTAX_ERROR)
    code, out, err = run(capsys, "fmt", *mode, "broken.lmp")
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert error_locations(err) == ["broken.lmp:4:5"]
    assert path.read_bytes() == SYNTAX_ERROR.encode()
    assert sorted(p.name for p in Path().iterdir()) == ["broken.lmp"]


def test_fmt_write_keeps_the_byte_order_mark_a_windows_editor_wrote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The mark was dropped: the editor that wrote it then found its file in another encoding.
    path = Path("messy.lmp")
    path.write_bytes(b"\xef\xbb\xbf" + NOT_CANONICAL.encode())
    Path("plain.lmp").write_bytes(NOT_CANONICAL.encode())

    assert run(capsys, "fmt", "-w", "messy.lmp", "plain.lmp")[0] == EXIT_OK

    assert path.read_bytes() == b"\xef\xbb\xbf" + CANONICAL.encode()
    assert Path("plain.lmp").read_bytes() == CANONICAL.encode()  # and none is added


# Canonical, with what a CR could hide in: a long string's lines, and comments.
LONG_INSTRUCTION = '''\
# Answers, briefly.
signature QA {
    """
    Answer the question.
    Briefly.
    """
    input  question: str  # as asked
    output answer:   str
}

program P(question: str) -> (answer: str) {
    gen = predict QA(question=question)
    return answer = gen.answer
}
'''


def windows(text: str) -> bytes:
    """`text` as a Windows editor saves it: CRLF line endings."""
    return text.replace("\n", "\r\n").encode()


def test_fmt_write_keeps_the_line_endings_a_windows_editor_wrote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # They became LF: the whole file changed for its editor, and for a diff.
    Path("messy.lmp").write_bytes(windows(NOT_CANONICAL))
    Path("plain.lmp").write_bytes(NOT_CANONICAL.encode())
    Path("long.lmp").write_bytes(b"\xef\xbb\xbf" + windows(LONG_INSTRUCTION.replace("  ", "   ")))

    assert run(capsys, "fmt", "-w", "messy.lmp", "plain.lmp", "long.lmp")[0] == EXIT_OK

    assert Path("messy.lmp").read_bytes() == windows(CANONICAL)
    assert Path("plain.lmp").read_bytes() == CANONICAL.encode()  # and none are added
    assert Path("long.lmp").read_bytes() == b"\xef\xbb\xbf" + windows(LONG_INSTRUCTION)


def test_fmt_check_judges_the_formatting_not_the_line_endings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("clean.lmp").write_bytes(windows(CANONICAL))
    Path("long.lmp").write_bytes(windows(LONG_INSTRUCTION))
    Path("messy.lmp").write_bytes(windows(NOT_CANONICAL))
    os.utime("long.lmp", ns=(1_000_000_000, 1_000_000_000))

    code, out, _ = run(capsys, "fmt", "--check", "clean.lmp", "long.lmp", "messy.lmp")

    assert (code, out) == (EXIT_FAILED, "would reformat messy.lmp\n")
    assert run(capsys, "fmt", "-w", "long.lmp") == (EXIT_OK, "", "")
    assert Path("long.lmp").stat().st_mtime_ns == 1_000_000_000  # left untouched


def test_a_file_with_windows_line_endings_is_the_same_program() -> None:
    # The CR of each line was read into the instruction of a long string.
    Path("windows.lmp").write_bytes(windows(LONG_INSTRUCTION))
    Path("unix.lmp").write_bytes(LONG_INSTRUCTION.encode())

    program = lmc.load("windows.lmp")

    assert program.gen.signature.instruction == "Answer the question.\nBriefly."
    assert program == lmc.load("unix.lmp")


def test_fmt_write_keeps_the_file_permissions(capsys: pytest.CaptureFixture[str]) -> None:
    path = write("messy.lmp", NOT_CANONICAL)
    path.chmod(0o644)
    assert run(capsys, "fmt", "-w", "messy.lmp")[0] == EXIT_OK
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# show --------------------------------------------------------------------------------------------


def test_show_svg_names_the_signatures_and_the_fields_on_edges(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("rag.lmp", RAG)
    code, out, _ = run(capsys, "show", "rag.lmp", "-o", "graph.svg")
    assert code == EXIT_OK
    assert out == "wrote graph.svg\n"
    root = ET.parse("graph.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = {t.text.strip() for t in root.iter(f"{SVG}text") if t.text}
    assert {"GenerateQuery", "GenerateAnswer"} <= texts
    edge_labels = " ".join(
        t.text or ""
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "edge"
        for t in g.iter(f"{SVG}text")
    )
    for field in ("query", "context", "question", "answer"):
        assert field in edge_labels


def test_show_dot_writes_graphviz_source(capsys: pytest.CaptureFixture[str]) -> None:
    write("rag.lmp", RAG)
    code, _, _ = run(capsys, "show", "rag.lmp", "-o", "graph.dot")
    assert code == EXIT_OK
    source = Path("graph.dot").read_text(encoding="utf-8")
    assert source.startswith("digraph RAG {")
    assert "GenerateAnswer" in source


def test_show_unsupported_extension_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    write("rag.lmp", RAG)
    code, _, err = run(capsys, "show", "rag.lmp", "-o", "graph.txt")
    assert code == EXIT_BAD_INPUT
    assert "graph.txt" in err
    assert ".svg" in err
    assert not Path("graph.txt").exists()


def test_show_needs_program_when_the_file_has_two(capsys: pytest.CaptureFixture[str]) -> None:
    write("two.lmp", TWO_PROGRAMS)
    code, _, err = run(capsys, "show", "two.lmp", "-o", "graph.svg")
    assert code == EXIT_BAD_INPUT
    assert "'First'" in err
    assert "'Second'" in err
    assert "--program" in err
    assert not Path("graph.svg").exists()


def test_show_program_picks_one_of_several(capsys: pytest.CaptureFixture[str]) -> None:
    write("two.lmp", TWO_PROGRAMS)
    code, _, _ = run(capsys, "show", "two.lmp", "-o", "graph.dot", "--program", "Second")
    assert code == EXIT_OK
    assert Path("graph.dot").read_text(encoding="utf-8").startswith("digraph Second {")


def test_show_unknown_program_exits_2_listing_the_programs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("two.lmp", TWO_PROGRAMS)
    code, _, err = run(capsys, "show", "two.lmp", "-o", "graph.svg", "--program", "Third")
    assert code == EXIT_BAD_INPUT
    assert "'Third'" in err
    assert "'First'" in err
    assert "'Second'" in err


def test_show_defaults_to_the_program_name(capsys: pytest.CaptureFixture[str]) -> None:
    write("rag.lmp", RAG)
    code, out, _ = run(capsys, "show", "rag.lmp")
    assert code == EXIT_OK
    assert out == "wrote RAG.svg\n"
    assert ET.parse("RAG.svg").getroot().tag == f"{SVG}svg"


def test_show_into_a_folder_reports_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("rag.lmp", RAG)
    Path("graph.svg").mkdir()
    code, _, err = run(capsys, "show", "rag.lmp", "-o", "graph.svg")
    assert code in (EXIT_FAILED, EXIT_BAD_INPUT)
    assert "graph.svg" in err


# output that scripts parse -----------------------------------------------------------------------


def test_paths_with_brackets_are_printed_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    write("draft[v2].lmp", CANONICAL)
    code, out, _ = run(capsys, "check", "draft[v2].lmp")
    assert code == EXIT_OK
    assert out == "draft[v2].lmp: ok (1 program, 1 step)\n"


def test_long_paths_stay_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    name = "a_program_whose_file_name_is_long_enough_to_pass_the_terminal_width.lmp"
    write(name, NOT_CANONICAL)
    code, out, _ = run(capsys, "fmt", "--check", name)
    assert code == EXIT_FAILED
    assert out == f"would reformat {name}\n"


# usage -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], [], ["check"], ["fmt"], ["show"], ["fmt", "--check", "-w", "x.lmp"]],
    ids=["unknown-command", "no-command", "check", "fmt", "show", "fmt-check-and-write"],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_BAD_INPUT
    assert "usage: lmc" in capsys.readouterr().err


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("lmc ")
