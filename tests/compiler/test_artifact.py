"""The compiled-program artifact: one JSON file holding the program in its text form (learned
parameters and all) and how it was compiled; `lmc.load`, `lmc run` and `lmc show` accept it
wherever they accept a `.lmp` file.

A damaged or foreign file is refused with a message naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from strategies import modules

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from lmc.compiler.artifact import (
    SCHEMA_VERSION,
    ArtifactError,
    CompileInfo,
    DevMiss,
    artifact_to_json,
    read_artifact,
    write_artifact,
)
from lmc.ir.graph import (
    NODE_KINDS,
    ConcatNode,
    ConstNode,
    Demo,
    FunctionNode,
    IndexRef,
    InputNode,
    ListNode,
    MetricRef,
    NearestDemos,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
    StepParams,
)
from lmc.ir.lower import check
from lmc.ir.text import writes_every_type
from lmc.passes.record import CandidateScore, PassRecord
from lmc.signatures import FieldSpec, FunctionSpec, SignatureSpec, StepOptions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

QA = """\
signature Answer {
    \"\"\"Answer the question.\"\"\"
    input  question: str
    output answer:   str "A few words."
}

program QA(question: str) -> (answer: str) {
    gen = predict Answer(question=question)
    return answer = gen.answer
}

metric exact_match(answer)
"""

# Every node kind the language lowers to, and the types that need care: literals with quotes and
# escapes, optionals, a loop variable, bool/int/float constants and `[]` flowing into text.
EVERY_KIND = r"""
signature Classify {
    "Pick a label."
    input  text:    str
    input  hints:   list[str] "Passages."
    input  n:       int?
    input  strict:  bool
    input  weight:  float
    input  extra:   str
    output label:   literal["a \"quoted\" one", "b\\c", "new\nline"]
    output score:   float? "How sure."
}

index docs = bm25("corpus.jsonl", text="body")

program Every(text: str) -> (label: literal["a \"quoted\" one", "b\\c", "new\nline"], score: float?) {
    found = retrieve docs(query=text, k=2)
    for i in range(2) {
        c = chain_of_thought Classify(text=text, hints=found + ["x", text], n=i, strict=true, weight=0.5, extra=[])
    }
    inline = predict "question, n: int -> answer: list[str]"(question=c.label, n=3)
    return label = c.label, score = c.score
}
"""


def round_trip(graph: ProgramGraph, folder: Path | None = None) -> ProgramGraph:
    """The graph through an artifact file and back."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(folder or scratch) / "program.json"
        write_artifact(path, graph, INFO)
        read, _ = read_artifact(path)
        return read


def assert_same_graph(read: ProgramGraph, written: ProgramGraph) -> None:
    assert read == written
    assert read.name == written.name
    assert [(n.name, n.type) for n in read.inputs()] == [(n.name, n.type) for n in written.inputs()]
    assert [(n.name, n.type) for n in read.outputs()] == [
        (n.name, n.type) for n in written.outputs()
    ]
    # `True == 1 == 1.0`: constants keep their Python types too.
    assert sorted(repr(n.value) for n in read.nodes() if isinstance(n, ConstNode)) == sorted(
        repr(n.value) for n in written.nodes() if isinstance(n, ConstNode)
    )
    assert read.indexes == written.indexes
    assert read.metric == written.metric
    assert sorted(read.params.values(), key=repr) == sorted(written.params.values(), key=repr)
    assert read.verify() == []


def with_learned_params(graph: ProgramGraph) -> ProgramGraph:
    """`graph` with an instruction and two demos (over each step's own fields) per step."""
    learned = graph.copy()
    for step in graph.steps():
        first_input = step.signature.inputs[0].name
        *middle, last_output = [f.name for f in step.signature.outputs_for(step.module)]
        learned.params[step.param_key] = StepParams(
            instruction=f"Learned instruction for {step.param_key}.",
            demos=(
                Demo(((first_input, "Who wrote Hamlet?"), (last_output, "Shakespeare"))),
                Demo(
                    (
                        (first_input, "q"),
                        *((name, "r\r\n\t") for name in middle),
                        (last_output, ["a", 1, None, -2.5, {"k": True}]),
                    )
                ),
            ),
            nearest=NearestDemos(
                2,
                (
                    Demo(((first_input, "Who wrote Faust?"), (last_output, "Goethe"))),
                    Demo(((first_input, "Who painted\nGuernica?"), (last_output, "Picasso"))),
                ),
                "embeddings",
            ),
        )
    return learned


INFO = CompileInfo(
    lm="local",
    backend="json",
    datasets={"train": "ab" * 32, "dev": "cd" * 32},
    metric={"name": "exact_match", "field": "answer"},
    created="2025-01-02T03:04:05+00:00",
)


# graphs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["qa", "rag"])
def test_example_programs_round_trip(example: str) -> None:
    program = lmc.load(EXAMPLES / example / "program.lmp")

    assert_same_graph(round_trip(program.ir), program.ir)


def test_every_node_kind_and_type_round_trips() -> None:
    program = lmc.loads(EVERY_KIND, file="every.lmp")
    kinds = {type(n) for n in program.ir.nodes()}

    assert kinds == {
        InputNode,
        OutputNode,
        StepNode,
        RetrieveNode,
        ConstNode,
        ListNode,
        ConcatNode,
    }
    assert_same_graph(round_trip(program.ir), program.ir)


def test_learned_instructions_and_demos_round_trip() -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = with_learned_params(program.ir)

    read = round_trip(learned)

    assert_same_graph(read, learned)
    assert read != program.ir
    assert read.params["search"].demos[1].fields[-1] == (
        "query",
        ["a", 1, None, -2.5, {"k": True}],
    )


def test_a_corpus_is_found_from_wherever_the_artifact_is_written(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    (tmp_path / "deep" / "er").mkdir(parents=True)

    read = round_trip(program.ir, tmp_path / "deep" / "er")

    assert read.indexes["wiki"].path == str(EXAMPLES / "rag" / "corpus.jsonl")


@settings(max_examples=60, deadline=None)
@given(modules())
def test_any_checked_program_round_trips(module: Any) -> None:
    for graph in check(module).graphs.values():
        assume(writes_every_type(graph))  # the text form's known gap
        assert_same_graph(round_trip(graph), graph)


def test_the_text_form_covers_every_field_of_the_ir() -> None:
    """A field added to the IR must be added to its text form: this fails until it is."""
    assert set(NODE_KINDS) == {
        InputNode,
        OutputNode,
        StepNode,
        FunctionNode,
        RetrieveNode,
        ConstNode,
        ListNode,
        ConcatNode,
    }
    # Spans, and a built program's retriever object (`IndexRef.bound`), are not the program.
    fields = {
        cls.__name__: {f.name for f in dataclasses.fields(cls)} - {"span", "bound"}
        for cls in (
            *NODE_KINDS,
            StepParams,
            NearestDemos,
            Demo,
            IndexRef,
            MetricRef,
            SignatureSpec,
            FunctionSpec,
            FieldSpec,
            StepOptions,
        )
    }
    assert fields == {
        "InputNode": {"name", "type"},
        "OutputNode": {"name", "type"},
        "StepNode": {"name", "signature", "module", "param_key", "options"},
        "FunctionNode": {"name", "function"},
        "RetrieveNode": {"name", "index", "k"},
        "ConstNode": {"name", "value", "type"},
        "ListNode": {"name", "size", "type"},
        "ConcatNode": {"name", "type"},
        "StepParams": {"instruction", "demos", "nearest"},
        "NearestDemos": {"k", "pool", "kind"},
        "Demo": {"fields"},
        "IndexRef": {"name", "kind", "path", "text_field"},
        "MetricRef": {"name", "field"},
        "SignatureSpec": {"name", "inputs", "outputs", "instruction"},
        "FunctionSpec": {"target", "signature"},
        "FieldSpec": {"name", "type", "desc"},
        "StepOptions": {"temperature", "max_tokens", "n", "tools", "max_iters"},
    }


# files -------------------------------------------------------------------------------------------


def test_write_then_read_gives_the_same_program_and_record(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = with_learned_params(program.ir)
    path = tmp_path / "rag.json"

    write_artifact(path, learned, INFO)
    read, info = read_artifact(path)

    assert info == INFO
    assert_same_graph(read, learned)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["schema"], data["version"]) == ("lmc-artifact", SCHEMA_VERSION)
    assert data["program"] == lmc.Program(learned).to_lmp(tmp_path)
    assert 'index wiki = bm25("../' in data["program"]
    assert path.read_text(encoding="utf-8").startswith('{\n  "schema": "lmc-artifact",\n')
    assert [p.name for p in tmp_path.iterdir()] == ["rag.json"]


def test_a_record_gets_a_creation_time_by_default() -> None:
    info = CompileInfo()

    assert info.created[:2] == "20"
    assert (info.lm, info.datasets, info.metric, info.passes) == (None, {}, None, ())


def test_writing_replaces_an_artifact_whole(tmp_path: Path) -> None:
    graph = lmc.loads(QA).ir
    path = tmp_path / "qa.json"
    write_artifact(path, graph, dataclasses.replace(INFO, lm="first"))

    write_artifact(path, graph, dataclasses.replace(INFO, lm="second"))

    assert read_artifact(path)[1].lm == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["qa.json"]


def test_a_malformed_graph_is_never_written(tmp_path: Path) -> None:
    broken = lmc.loads(QA).ir.copy()
    broken.params["unused"] = StepParams()
    path = tmp_path / "qa.json"
    path.write_text("old", encoding="utf-8")

    with pytest.raises(ValueError, match="parameters 'unused' are unused"):
        write_artifact(path, broken, INFO)

    assert path.read_text(encoding="utf-8") == "old"


def written(tmp_path: Path, change: Any = None) -> Path:
    """A valid artifact of QA, with `change(data)` applied to its JSON before writing."""
    path = tmp_path / "qa.json"
    data = artifact_to_json(lmc.loads(QA).ir, INFO, str(tmp_path))
    if change is not None:
        change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path)
    path.write_text(path.read_text(encoding="utf-8")[:200], encoding="utf-8")

    with pytest.raises(ArtifactError, match=r"qa\.json: not an lmc artifact: invalid JSON"):
        read_artifact(path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\x00\xffnot json")

    with pytest.raises(
        ArtifactError, match=r"garbage\.json: line 1: not UTF-8 text \(byte 0xff at column 2\)$"
    ):
        read_artifact(path)


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"program": {}}', '{"schema": "other", "version": 1}']
)
def test_json_that_is_not_an_artifact_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(
        ArtifactError,
        match=r'other\.json: not an lmc artifact \(expected .*"schema": "lmc-artifact"',
    ):
        read_artifact(path)


def test_another_version_says_to_recompile(tmp_path: Path) -> None:
    path = written(tmp_path, lambda data: data.update(version=1))

    with pytest.raises(ArtifactError) as raised:
        read_artifact(path)

    assert str(raised.value) == (
        f"{path}: written by lmc with artifact version 1; this lmc reads version 2: "
        "re-run lmc compile"
    )


def test_missing_keys_are_named(tmp_path: Path) -> None:
    path = written(tmp_path, lambda data: [data.pop("lm"), data.pop("metric")])

    with pytest.raises(
        ArtifactError, match=r"qa\.json: an incomplete artifact: missing 'lm', 'metric'"
    ):
        read_artifact(path)


def _edit_program(old: str, new: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        assert old in data["program"]
        data["program"] = data["program"].replace(old, new)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(lm=3), "'lm' should be a string, found a number"),
        (lambda d: d.update(program=7), "'program' should be a string, found a number"),
        (lambda d: d.update(passes=[{"name": 1}]), "pass 1 is not a pass record"),
        (
            _edit_program("program QA", "program {"),
            "its program does not check: line 7, column 9: expected a name, found '{'",
        ),
        (
            _edit_program("input  question: str", "input  question: list[str]"),
            "its program does not check: line 8, column 35: type mismatch",
        ),
        (
            _edit_program("predict Answer(", "predict Answr("),
            "unknown signature 'Answr'",
        ),
    ],
)
def test_a_damaged_artifact_is_refused_saying_where(
    tmp_path: Path, change: Any, message: str
) -> None:
    path = written(tmp_path, change)

    with pytest.raises(ArtifactError) as raised:
        read_artifact(path)

    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nope\.json: no such file"):
        read_artifact(tmp_path / "nope.json")


# programs ----------------------------------------------------------------------------------------


def test_load_reads_an_artifact_as_its_compiled_program(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = with_learned_params(program.ir)
    lmc.Program(learned, INFO).save(tmp_path / "rag.json")

    loaded = lmc.load(tmp_path / "rag.json")

    assert loaded.name == "MultiHopRAG"
    assert loaded.ir == learned
    assert loaded.compiled == INFO
    assert loaded.inputs == program.inputs
    assert loaded.outputs == program.outputs
    assert loaded.metric == program.metric
    assert "Learned instruction for search." in loaded.to_lmp()
    assert lmc.load(tmp_path / "rag.json", "MultiHopRAG").ir == learned


def test_an_artifact_saved_in_a_linked_folder_finds_its_corpus_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `out` links to a folder elsewhere; the corpus and the artifact are both in `out`.
    (tmp_path / "disks" / "big" / "store").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "out").symlink_to(tmp_path / "disks" / "big" / "store")
    monkeypatch.chdir(tmp_path / "work")
    Path("out/wiki.jsonl").write_text('{"text": "a passage"}\n', encoding="utf-8")
    Path("out/ask.lmp").write_text(
        'index wiki = bm25("wiki.jsonl")\n\n'
        "program Ask(question: str) -> (answer: str) {\n"
        "    passages = retrieve wiki(query=question, k=1)\n"
        '    gen = predict "context: list[str], question -> answer"'
        "(context=passages, question=question)\n"
        "    return answer = gen.answer\n}\n",
        encoding="utf-8",
    )

    lmc.Program(lmc.load("out/ask.lmp").ir, INFO).save("out/ask.json")

    (index,) = lmc.load("out/ask.json").ir.indexes.values()
    assert Path(index.path).read_text(encoding="utf-8") == '{"text": "a passage"}\n'


def test_save_and_load_lmp_text_keep_what_was_learned(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = lmc.Program(with_learned_params(program.ir), INFO)

    learned.save(tmp_path / "rag.lmp")
    read = lmc.load(tmp_path / "rag.lmp")

    assert read == learned
    assert read.compiled is None  # .lmp text holds the program, not how it was compiled
    assert read.ir.indexes == program.ir.indexes


def test_asking_an_artifact_for_another_program_is_refused(tmp_path: Path) -> None:
    lmc.Program(lmc.loads(QA).ir, INFO).save(tmp_path / "qa.json")

    with pytest.raises(ArtifactError, match="the artifact holds program 'QA', not 'RAG'"):
        lmc.load(tmp_path / "qa.json", "RAG")


# lmc run and lmc show ----------------------------------------------------------------------------


def last_input(request: LMRequest) -> str:
    """The value of the single input field in the request's last user message."""
    return request.messages[-1].content.split("\n", 1)[1].split("\n\n", 1)[0]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(
        lambda request: json.dumps({"answer": f"echo {last_input(request)}"}),
        identity="fake-model",
    )
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    return lm


def lmc_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def compiled_qa() -> lmc.Program:
    graph = lmc.loads(QA).ir.copy()
    graph.params["gen"] = StepParams(
        instruction="Answer like a librarian.",
        demos=(Demo((("question", "Who wrote Hamlet?"), ("answer", "Shakespeare"))),),
    )
    return lmc.Program(graph, INFO)


def test_run_an_artifact_uses_the_learned_demos_and_instruction(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compiled_qa().save("qa.json")

    code, out, _ = lmc_cli(capsys, "run", "qa.json", "--input", "question=hi")

    assert code == EXIT_OK
    assert out == "answer: echo hi\n"
    [request] = fake.requests
    prompt = "\n".join(m.content for m in request.messages)
    assert "Answer like a librarian." in request.messages[0].content
    assert "Who wrote Hamlet?" in prompt
    assert '"answer": "Shakespeare"' in prompt


def test_run_a_dataset_through_an_artifact(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compiled_qa().save("qa.json")
    Path("in.jsonl").write_text('{"question": "a"}\n{"question": "b"}\n', encoding="utf-8")

    code, _, _ = lmc_cli(capsys, "run", "qa.json", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_OK
    lines = [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]
    assert [line["outputs"] for line in lines] == [{"answer": "echo a"}, {"answer": "echo b"}]


def test_show_an_artifact(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    lmc.Program(with_learned_params(program.ir), INFO).save("rag.json")

    code, out, _ = lmc_cli(capsys, "show", "rag.json", "-o", "x.dot")

    assert code == EXIT_OK
    assert out == "wrote x.dot\n"
    source = Path("x.dot").read_text(encoding="utf-8")
    assert source.startswith("digraph MultiHopRAG {")
    assert "GenerateAnswer" in source


@pytest.mark.parametrize(
    "command", [["run", "bad.json", "--input", "question=hi"], ["show", "bad.json", "-o", "x.dot"]]
)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "lmc-artifact", "version": 7}', "written by lmc with artifact version 7"),
        ('{"schema": "lmc-art', "not an lmc artifact: invalid JSON"),
        ("[]", "not an lmc artifact"),
    ],
)
def test_a_bad_artifact_exits_2_with_one_line(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    content: str,
    message: str,
) -> None:
    Path("bad.json").write_text(content, encoding="utf-8")

    code, out, err = lmc_cli(capsys, *command)

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: bad.json: ")
    assert message in err
    assert err.count("\n") == 1
    assert fake.requests == []
    assert not Path("x.dot").exists()


def test_a_missing_artifact_exits_2(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lmc_cli(capsys, "run", "gone.json", "--input", "question=hi")

    assert code == EXIT_BAD_INPUT
    assert err == "lmc: error: gone.json: no such file\n"


# candidates and misses ---------------------------------------------------------------------------


def test_candidates_misses_and_command_round_trip(tmp_path: Path) -> None:
    candidates = [
        CandidateScore("gen candidate 2", 12, 0.5, 8, kept=False, detail="Answer briefly."),
        CandidateScore("gen candidate 1", 30, 0.75, 16, kept=True),
    ]
    record = PassRecord("instruction-search", {}, 0.5, 0.75, 30, 0, 900, 40, 1.5, 1)
    record.candidates = candidates
    miss = DevMiss(3, {"question": "q3"}, {"answer": "a3"}, {"answer": "no idea"}, 0.0)
    info = dataclasses.replace(INFO, passes=(record,), misses=(miss,), command="lmc compile x")
    path = tmp_path / "a.json"

    write_artifact(path, lmc.load(EXAMPLES / "qa" / "program.lmp").ir, info)
    _, read = read_artifact(path)

    assert read.passes[0].candidates == candidates
    assert read.misses == (miss,)
    assert read.command == "lmc compile x"


def test_an_artifact_without_candidates_misses_or_command_still_loads(tmp_path: Path) -> None:
    record = PassRecord("bootstrap-demos", {}, 0.5, 0.75, 30, 0, 900, 40, 1.5, 1)
    path = tmp_path / "old.json"
    write_artifact(path, lmc.load(EXAMPLES / "qa" / "program.lmp").ir, INFO)
    data = json.loads(path.read_text(encoding="utf-8"))
    old_record = record.to_json()
    del old_record["candidates"]
    data["passes"] = [old_record]
    del data["misses"], data["command"]
    path.write_text(json.dumps(data), encoding="utf-8")

    _, read = read_artifact(path)

    assert read.passes[0].candidates == []
    assert read.misses == ()
    assert read.command is None


def test_a_malformed_miss_names_the_artifact_and_the_miss(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    write_artifact(path, lmc.load(EXAMPLES / "qa" / "program.lmp").ir, INFO)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["misses"] = [{"record": 1}]
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(ArtifactError, match=r"bad.json: miss 1 is not a dev example"):
        read_artifact(path)


_RECORD = PassRecord(
    "bootstrap-demos",
    {"candidates": 2},
    0.2,
    0.6,
    40,
    0,
    900,
    300,
    1.5,
    1,
    ["kept"],
    [0.4, 0.2, 0.6],
).to_json()
_MISS = {"record": 3, "inputs": {"q": "x"}, "expected": {"a": "y"}, "predicted": {"a": "z"}}


@pytest.mark.parametrize(
    ("key", "entry", "message"),
    [
        ("passes", {**_RECORD, "gain": [0.1]}, "pass 1 is not a pass record"),
        ("passes", {**_RECORD, "gain": "abc"}, "pass 1 is not a pass record"),
        ("passes", {**_RECORD, "notes": 5}, "pass 1 is not a pass record"),
        ("passes", {**_RECORD, "options": [1]}, "pass 1 is not a pass record"),
        ("passes", {**_RECORD, "cached": "none"}, "pass 1 is not a pass record"),
        ("misses", {**_MISS, "score": "bad"}, "miss 1 is not a dev example"),
        ("misses", {**_MISS, "score": 0.0, "predicted": 5}, "miss 1 is not a dev example"),
        ("misses", {**_MISS, "score": 0.0, "error": 7}, "miss 1 is not a dev example"),
    ],
)
def test_every_field_the_report_reads_is_checked_when_the_artifact_is_read(
    tmp_path: Path, key: str, entry: dict[str, Any], message: str
) -> None:
    # Hand-edited artifacts once passed the read and failed in `lmc report` with a traceback.
    path = tmp_path / "edited.json"
    write_artifact(path, lmc.load(EXAMPLES / "qa" / "program.lmp").ir, INFO)
    data = json.loads(path.read_text(encoding="utf-8"))
    data[key] = [entry]
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(ArtifactError, match=f"edited.json: {message}"):
        read_artifact(path)


def test_the_well_formed_record_and_miss_those_edits_start_from_are_read(tmp_path: Path) -> None:
    path = tmp_path / "edited.json"
    write_artifact(path, lmc.load(EXAMPLES / "qa" / "program.lmp").ir, INFO)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["passes"], data["misses"] = [_RECORD], [{**_MISS, "score": 0.0}]
    path.write_text(json.dumps(data), encoding="utf-8")

    _, read = read_artifact(path)

    assert read.passes[0].gain == [0.4, 0.2, 0.6]
    assert read.misses[0].predicted == {"a": "z"}
