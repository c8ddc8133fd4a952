"""An artifact reads corpora from its own folder only, unless the user names one with `--corpus
NAME=PATH`: an artifact from elsewhere cannot make a run quote any JSONL file on the machine to
the model. Reading an artifact (`fmt`, `show`) reads no corpus, so it is not held to this. No
command writes over a corpus its program reads.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from lmc.compiler.artifact import CompileInfo

RAG = """\
index wiki = bm25("corpus.jsonl", text="text")

program RAG(question: str) -> (answer: str) {
    passages = retrieve wiki(query=question, k=1)
    gen = predict "context: list[str], question -> answer"(context=passages, question=question)
    return answer = gen.answer
}
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(lambda request: json.dumps({"answer": "Paris"}), identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    return lm


def compiled_into(folder: str, corpus_folder: str) -> str:
    """An artifact in `folder` of a program whose corpus is in `corpus_folder`."""
    Path(corpus_folder).mkdir(exist_ok=True)
    Path(folder).mkdir(exist_ok=True)
    corpus = Path(corpus_folder) / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "Paris is in France."}) + "\n", encoding="utf-8")
    (Path(corpus_folder) / "rag.lmp").write_text(RAG, encoding="utf-8")
    program = lmc.load(Path(corpus_folder) / "rag.lmp")
    artifact = str(Path(folder) / "rag.compiled.json")
    lmc.Program(program.ir, CompileInfo("fake-model", "json")).save(artifact)
    return artifact


def lmc_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_an_artifact_runs_on_a_corpus_in_its_folder(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "shipped")

    code, out, _ = lmc_cli(capsys, "run", artifact, "--input", "question=Where is Paris?")

    assert code == EXIT_OK
    assert out == "answer: Paris\n"


def test_an_artifact_naming_a_corpus_outside_its_folder_does_not_read_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "elsewhere")

    code, _, err = lmc_cli(capsys, "run", artifact, "--input", "question=Where is Paris?")

    assert code == EXIT_BAD_INPUT
    corpus = Path("elsewhere/corpus.jsonl").resolve()
    assert err == (
        f"lmc: error: {artifact}: index 'wiki' reads {corpus}, outside the artifact's folder; an "
        "artifact reads corpora beside it only: copy the corpus there, or name it yourself with "
        f"--corpus wiki={corpus}\n"
    )
    assert fake.requests == []


def test_a_corpus_the_user_names_is_read_wherever_it_is(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "elsewhere")

    code, _, _ = lmc_cli(
        capsys,
        "run",
        artifact,
        "--input",
        "question=Where is Paris?",
        "--corpus",
        "wiki=elsewhere/corpus.jsonl",
    )

    assert code == EXIT_OK
    assert "Paris is in France." in json.dumps(fake.requests[0].to_json())


def test_reading_an_artifact_reads_no_corpus_and_is_not_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "elsewhere")

    code, out, _ = lmc_cli(capsys, "fmt", artifact)

    assert code == EXIT_OK
    assert "index wiki = bm25(" in out


def test_a_corpus_for_an_index_the_program_lacks_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "shipped")

    code, _, err = lmc_cli(
        capsys, "run", artifact, "--input", "question=q", "--corpus", "wikki=x.jsonl"
    )

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: --corpus wikki=...: program RAG has no index 'wikki' (its indexes: wiki)\n"
    )


@pytest.mark.parametrize("command", ["run", "eval", "compile"])
@pytest.mark.parametrize(
    ("corpus", "problem"),
    [
        (None, "no such file"),
        (
            '{"body": "Paris is in France."}\n',
            "record 1: expected a JSON object with a string 'text'",
        ),
    ],
    ids=["missing", "malformed"],
)
def test_a_corpus_that_cannot_be_read_is_refused_before_any_lm_call(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], command: str, corpus: str | None, problem: str
) -> None:
    # The retrieve would first read it after the steps before it had spent their calls, and a
    # corpus is the user's input: exit 2, naming the index and the file.
    Path("rag.lmp").write_text(RAG, encoding="utf-8")
    if corpus is not None:
        Path("corpus.jsonl").write_text(corpus, encoding="utf-8")
    Path("data.jsonl").write_text('{"question": "Where is Paris?", "answer": "France"}\n' * 4)
    given = {
        "run": ["--input", "question=Where is Paris?"],
        "eval": ["--data", "data.jsonl", "--metric", "exact_match(answer)"],
        "compile": ["--train", "data.jsonl", "--metric", "exact_match(answer)"],
    }[command]

    code, out, err = lmc_cli(capsys, command, "rag.lmp", *given)

    assert code == EXIT_BAD_INPUT
    assert out == ""
    where = Path("corpus.jsonl").resolve()
    assert err.splitlines()[-1] == f"lmc: error: index 'wiki': {where}: {problem}"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("named", "corpus"),
    [([], "shipped/corpus.jsonl"), (["--corpus", "wiki=mine.jsonl"], "mine.jsonl")],
    ids=["the program's corpus", "a corpus the user names"],
)
def test_a_trace_written_over_a_corpus_the_run_reads_exits_2_and_leaves_it_whole(
    named: list[str], corpus: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = compiled_into("shipped", "shipped")
    Path("mine.jsonl").write_bytes(Path("shipped/corpus.jsonl").read_bytes())
    passages = Path(corpus).read_bytes()

    code, _, err = lmc_cli(
        capsys, "run", artifact, "--input", "question=q", *named, "--trace", corpus
    )

    assert code == EXIT_BAD_INPUT
    assert err == (
        f"lmc: error: --trace {corpus} is the corpus of index wiki; write the trace elsewhere\n"
    )
    assert Path(corpus).read_bytes() == passages
    assert fake.requests == []
