"""BM25 retrieval: built once per corpus content, kept on disk, and used by `retrieve` steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import main
from lmc.files import DataError
from lmc.retrieval.index import build_index, open_retriever, read_corpus

PASSAGES = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Mount Everest is Earth's highest mountain above sea level, in the Himalayas.",
    "The Great Barrier Reef is the world's largest coral reef system, off Australia.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Amazon River in South America is the largest river by discharge volume.",
]


def write_corpus(path: Path, passages: list[str]) -> Path:
    lines = [json.dumps({"id": f"p{i}", "text": text}) for i, text in enumerate(passages)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_search_ranks_the_matching_passage_first(tmp_path: Path) -> None:
    retriever = open_retriever(write_corpus(tmp_path / "c.jsonl", PASSAGES), "bm25", "text")
    assert retriever.search("highest mountain in the Himalayas", 2)[0] == PASSAGES[1]
    assert retriever.search_ids("coral reef near Australia", 1) == ["p2"]


def test_k_larger_than_the_corpus_returns_every_passage(tmp_path: Path) -> None:
    retriever = open_retriever(write_corpus(tmp_path / "c.jsonl", PASSAGES), "bm25", "text")
    assert len(retriever.search("river tower reef mountain plants", 50)) == len(PASSAGES)


def test_an_index_is_built_once_and_rebuilt_when_the_corpus_changes(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.jsonl", PASSAGES)
    first, built = build_index(read_corpus(path), "bm25")
    assert built
    again, built_again = build_index(read_corpus(path), "bm25")
    assert (again, built_again) == (first, False)
    write_corpus(path, [*PASSAGES, "The Sahara is the largest hot desert."])
    changed, rebuilt = build_index(read_corpus(path), "bm25")
    assert rebuilt
    assert changed != first
    leftovers = [p for p in first.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_malformed_corpus_record_is_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"c\.jsonl: record 2: expected a JSON object with a "
        r"string 'text'",
    ):
        read_corpus(path)


def test_lmc_index_build_reports_then_reuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_corpus(tmp_path / "c.jsonl", PASSAGES)
    assert main(["index", "build", str(path)]) == 0
    assert "built in" in capsys.readouterr().out
    assert main(["index", "build", str(path)]) == 0
    assert "already built" in capsys.readouterr().out
    assert main(["index", "build", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


PROGRAM = """
index facts = bm25("corpus.jsonl", text="text")

program Ask(question: str) -> (answer: str) {
    passages = retrieve facts(query=question, k=2)
    gen = predict "context: list[str], question -> answer"(context=passages, question=question)
    return answer = gen.answer
}
"""


def test_a_retrieve_step_feeds_the_passages_to_the_next_step(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.jsonl", PASSAGES)
    (tmp_path / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
    program = lmc.load(tmp_path / "ask.lmp")

    def answer(request: LMRequest) -> str:
        seen = request.messages[-1].content
        return json.dumps({"answer": "Paris" if "Eiffel" in seen else "unknown"})

    fake = FakeLM(answer)
    context = lmc.context(fake, cache=False)
    assert program.run({"question": "Where is the Eiffel Tower?"}, context).answer == "Paris"
    assert context.stats.retrievals == 1


def test_lmc_index_build_of_a_python_retriever_kind_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_corpus(tmp_path / "c.jsonl", PASSAGES)

    assert main(["index", "build", str(path), "--kind", "python"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("lmc: error: a python index is not built from a corpus file")
    assert err.count("\n") == 1


def test_programs_on_one_context_each_retrieve_from_their_own_corpus(tmp_path: Path) -> None:
    # Both call their index `facts`; one context runs both, as a notebook's configured one does.
    programs = []
    for folder, passages in (("a", PASSAGES[:2]), ("b", PASSAGES[2:])):
        (tmp_path / folder).mkdir()
        write_corpus(tmp_path / folder / "corpus.jsonl", passages)
        (tmp_path / folder / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
        programs.append(lmc.load(tmp_path / folder / "ask.lmp"))
    fake = FakeLM(lambda request: json.dumps({"answer": request.messages[-1].content}))
    context = lmc.context(fake, cache=False)

    first, second = (p.run({"question": "tower reef"}, context).answer for p in programs)

    assert "Eiffel" in first
    assert "Reef" not in first
    assert "Reef" in second
    assert "Eiffel" not in second


def test_a_corpus_edited_between_runs_is_read_again(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.jsonl", PASSAGES[:2])
    (tmp_path / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
    program = lmc.load(tmp_path / "ask.lmp")
    fake = FakeLM(lambda request: json.dumps({"answer": request.messages[-1].content}))
    context = lmc.context(fake, cache=False)
    assert "Reef" not in program.run({"question": "reef"}, context).answer

    write_corpus(tmp_path / "corpus.jsonl", [*PASSAGES[:2], "A reef of coral, newly added."])

    assert "newly added" in program.run({"question": "reef"}, context).answer


def test_a_missing_corpus_is_refused_as_input_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda *a: FakeLM(['{"answer": "x"}']))
    code = main(["run", str(tmp_path / "ask.lmp"), "--input", "question=q"])
    assert code == 2
    assert "index 'facts'" in capsys.readouterr().err


def test_retrieve_from_python_searches_the_index(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.jsonl", PASSAGES)
    retrieve = lmc.Retrieve(k=1, index=lmc.bm25(str(path)))
    assert retrieve("Which river carries the most water?").passages == [PASSAGES[4]]


def test_retrievals_are_in_the_trace_and_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(tmp_path / "corpus.jsonl", PASSAGES)
    (tmp_path / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
    program = lmc.load(tmp_path / "ask.lmp")
    trace = tmp_path / "trace.jsonl"
    context = lmc.context(FakeLM(['{"answer": "Paris"}']), cache=False, trace=str(trace))
    program.run({"question": "Where is the Eiffel Tower?"}, context)
    assert context.trace is not None
    context.trace.close()
    lines = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    retrieval = next(line for line in lines if line.get("kind") == "retrieval")
    assert retrieval["query"] == "Where is the Eiffel Tower?"
    assert retrieval["passages"][0] == PASSAGES[0]
    assert main(["trace", "show", str(trace)]) == 0
    assert "retrieve facts" in capsys.readouterr().out


def test_an_artifact_finds_its_corpus_after_its_folder_moves(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_corpus(project / "corpus.jsonl", PASSAGES)
    (project / "ask.lmp").write_text(PROGRAM, encoding="utf-8")
    program = lmc.load(project / "ask.lmp")
    program.save(project / "ask.json")
    moved = project.rename(tmp_path / "moved")
    ref = lmc.load(moved / "ask.json").ir.indexes["facts"]
    assert Path(ref.path) == moved / "corpus.jsonl"
