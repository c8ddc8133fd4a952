"""The compiled-program artifact: one JSON file that gives back the same program graph, learned
parameters and all, and that `lmc run` and `lmc show` accept wherever they accept a `.lmp` file.

A damaged or foreign file is refused with a message naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from strategies import lm_types, modules

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from lmc.compiler.artifact import (
    SCHEMA_VERSION,
    Artifact,
    ArtifactError,
    graph_from_json,
    graph_to_json,
    load_program_file,
    read_artifact,
    type_from_text,
    write_artifact,
)
from lmc.ir.graph import (
    ConcatNode,
    ConstNode,
    Demo,
    IndexRef,
    InputNode,
    ListNode,
    Node,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
    StepParams,
)
from lmc.ir.lower import check
from lmc.program import Program
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import EMPTY_LIST, INT, PASSAGES, STR, ListOf, LmType, Nothing, OneOf, OptionalOf

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


def round_trip(graph: ProgramGraph) -> ProgramGraph:
    """The graph through JSON text and back."""
    return graph_from_json(json.loads(json.dumps(graph_to_json(graph))))


def strict(node: Node) -> tuple[Any, ...]:
    """A node's every field, names and parameter keys included, with each constant's Python type
    (`True == 1 == 1.0` would hide a bool read back as a number)."""
    values = tuple(getattr(node, f.name) for f in dataclasses.fields(node) if f.name != "span")
    if isinstance(node, ConstNode):
        return (*values, repr(node.value))
    return (type(node).__name__, *values)


def assert_same_graph(read: ProgramGraph, written: ProgramGraph) -> None:
    assert read == written
    assert read.name == written.name
    assert list(read.nx.nodes) == list(written.nx.nodes)
    assert [strict(n) for n in read.nodes()] == [strict(n) for n in written.nodes()]
    assert list(read.edges()) == list(written.edges())
    assert read.indexes == written.indexes
    assert [i.base for i in read.indexes.values()] == [i.base for i in written.indexes.values()]
    assert read.params == written.params
    assert list(read.params) == list(written.params)
    assert read.verify() == []


def with_learned_params(graph: ProgramGraph) -> ProgramGraph:
    learned = graph.copy()
    for key in learned.params:
        learned.params[key] = StepParams(
            instruction=f"Learned instruction for {key}.",
            demos=(
                Demo((("question", "Who wrote Hamlet?"), ("answer", "Shakespeare"))),
                Demo((("question", "q"), ("reasoning", "r"), ("answer", ["a", 1, None]))),
            ),
        )
    return learned


def artifact_of(program: Program, graph: ProgramGraph | None = None, **changes: Any) -> Artifact:
    fields: dict[str, Any] = {
        "program": graph if graph is not None else program.ir,
        "source": program.to_lmp(),
        "lm": "local",
        "backend": "json",
        "datasets": {"train": "ab" * 32, "dev": "cd" * 32},
        "metric": {"name": "exact_match", "field": "answer"},
        "passes": [{"name": "bootstrap-demos", "options": {"max_demos": 4}, "score": 0.5}],
        "created": "2025-01-02T03:04:05+00:00",
    }
    fields.update(changes)
    return Artifact(**fields)


# graphs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["qa", "rag"])
def test_example_programs_round_trip_with_their_node_ids(example: str) -> None:
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
    assert read.params["search"].demos[1].fields[2] == ("answer", ["a", 1, None])


def test_tuple_constants_and_empty_lists_keep_their_types() -> None:
    graph = ProgramGraph("Consts")
    graph.add(InputNode("q", STR))
    graph.add(OutputNode("out", PASSAGES))
    graph.add(ConstNode("pair", ("a", ("b", 2, 1.5, True)), ListOf(STR)))
    graph.add(ConstNode("none", (), EMPTY_LIST))
    graph.add(ConcatNode("both", PASSAGES))
    graph.connect("pair", "value", "both", "left")
    graph.connect("none", "value", "both", "right")
    graph.connect("both", "value", "out:out", "value")

    read = round_trip(graph)

    assert_same_graph(read, graph)
    pair = read.node("pair")
    assert isinstance(pair, ConstNode)
    assert pair.value == ("a", ("b", 2, 1.5, True))
    assert repr(pair.value) == repr(("a", ("b", 2, 1.5, True)))


def test_an_index_keeps_its_base_folder() -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    graph = program.ir.copy()
    graph.indexes["wiki"] = IndexRef("wiki", "bm25", "corpus.jsonl", "text", "/data/corpora")

    assert round_trip(graph).indexes["wiki"].base == "/data/corpora"


@settings(max_examples=60, deadline=None)
@given(modules())
def test_any_checked_program_round_trips(module: Any) -> None:
    for graph in check(module).graphs.values():
        assert_same_graph(round_trip(graph), graph)


@settings(max_examples=200, deadline=None)
@given(lm_types)
def test_types_read_back_from_their_text(type_: LmType) -> None:
    assert type_from_text(str(type_)) == type_


@pytest.mark.parametrize(
    "type_",
    [
        Nothing(),
        EMPTY_LIST,
        OptionalOf(ListOf(Nothing())),
        OneOf(('a "b"', "c\\d", "e\nf", "g, h]")),
        ListOf(OptionalOf(INT)),
    ],
)
def test_checker_types_and_tricky_literals_read_back(type_: LmType) -> None:
    assert type_from_text(str(type_)) == type_


@pytest.mark.parametrize("text", ["string", "list[int", "int??", "literal[1]", ""])
def test_a_type_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ArtifactError, match="unknown type"):
        type_from_text(text)


def test_the_serializer_covers_every_field_of_the_ir() -> None:
    """A field added to the IR must be added to the artifact: this fails until it is."""
    assert set(typing.get_args(Node)) == {
        InputNode,
        OutputNode,
        StepNode,
        RetrieveNode,
        ConstNode,
        ListNode,
        ConcatNode,
    }
    fields = {
        cls.__name__: {f.name for f in dataclasses.fields(cls)} - {"span"}
        for cls in (*typing.get_args(Node), StepParams, Demo, IndexRef, SignatureSpec, FieldSpec)
    }
    assert fields == {
        "InputNode": {"name", "type"},
        "OutputNode": {"name", "type"},
        "StepNode": {"name", "signature", "module", "param_key"},
        "RetrieveNode": {"name", "index", "k"},
        "ConstNode": {"name", "value", "type"},
        "ListNode": {"name", "size", "type"},
        "ConcatNode": {"name", "type"},
        "StepParams": {"instruction", "demos"},
        "Demo": {"fields"},
        "IndexRef": {"name", "kind", "path", "text_field", "base"},
        "SignatureSpec": {"name", "inputs", "outputs", "instruction"},
        "FieldSpec": {"name", "type", "desc"},
    }


# files -------------------------------------------------------------------------------------------


def test_write_then_read_gives_the_same_artifact(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    artifact = artifact_of(program, with_learned_params(program.ir))
    path = tmp_path / "rag.json"

    write_artifact(path, artifact)
    read = read_artifact(path)

    assert read == artifact
    assert_same_graph(read.program, artifact.program)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["schema"], data["version"]) == ("lmc-artifact", SCHEMA_VERSION)
    assert path.read_text(encoding="utf-8").startswith('{\n  "schema": "lmc-artifact",\n')
    assert [p.name for p in tmp_path.iterdir()] == ["rag.json"]


def test_an_artifact_gets_a_creation_time_by_default() -> None:
    program = lmc.loads(QA)
    artifact = Artifact(program.ir, program.to_lmp(), "local", "json")

    assert artifact.created[:2] == "20"
    assert (artifact.datasets, artifact.metric, artifact.passes) == ({}, None, [])


def test_writing_replaces_an_artifact_whole(tmp_path: Path) -> None:
    program = lmc.loads(QA)
    path = tmp_path / "qa.json"
    write_artifact(path, artifact_of(program, lm="first"))

    write_artifact(path, artifact_of(program, lm="second"))

    assert read_artifact(path).lm == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["qa.json"]


def test_a_malformed_graph_is_never_written(tmp_path: Path) -> None:
    program = lmc.loads(QA)
    broken = program.ir.copy()
    broken.params["unused"] = StepParams()
    path = tmp_path / "qa.json"
    path.write_text("old", encoding="utf-8")

    with pytest.raises(ValueError, match="parameters 'unused' are unused"):
        write_artifact(path, artifact_of(program, broken))

    assert path.read_text(encoding="utf-8") == "old"


def written(tmp_path: Path, change: Any = None) -> Path:
    """A valid artifact of QA, with `change(data)` applied to its JSON before writing."""
    program = lmc.loads(QA)
    path = tmp_path / "qa.json"
    data = json.loads(json.dumps(_artifact_json(artifact_of(program))))
    if change is not None:
        change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _artifact_json(artifact: Artifact) -> dict[str, Any]:
    from lmc.compiler.artifact import artifact_to_json

    return artifact_to_json(artifact)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path)
    path.write_text(path.read_text(encoding="utf-8")[:200], encoding="utf-8")

    with pytest.raises(ArtifactError, match=r"qa\.json: not an lmc artifact: invalid JSON"):
        read_artifact(path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\x00\xffnot json")

    with pytest.raises(ArtifactError, match=r"garbage\.json: not UTF-8 text"):
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
    path = written(tmp_path, lambda data: data.update(version=2))

    with pytest.raises(ArtifactError) as raised:
        read_artifact(path)

    assert str(raised.value) == (
        f"{path}: written by lmc with artifact version 2; this lmc reads version 1: "
        "re-run lmc compile"
    )


def test_missing_keys_are_named(tmp_path: Path) -> None:
    path = written(tmp_path, lambda data: [data.pop("lm"), data.pop("metric")])

    with pytest.raises(
        ArtifactError, match=r"qa\.json: an incomplete artifact: missing 'lm', 'metric'"
    ):
        read_artifact(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(lm=3), "'lm' should be a string, found a number"),
        (lambda d: d["program"]["nodes"][0].pop("type"), "program: node 1: missing 'type'"),
        (lambda d: d["program"]["nodes"][2].update(kind="loop"), "unknown node kind 'loop'"),
        (lambda d: d["program"]["nodes"][0].update(type="string"), "unknown type 'string'"),
        (lambda d: d["program"]["edges"][0].update(source="nowhere"), "no node 'nowhere'"),
        (lambda d: d["program"]["params"].clear(), "missing 'gen', which a step reads"),
        (
            lambda d: d["program"]["edges"].pop(0),
            "the program graph is not well-formed: gen: nothing flows into 'question'",
        ),
        (
            lambda d: d["program"]["nodes"][0].update(type="int"),
            "edge 1: the edge says str, but 'in:question.value' is int",
        ),
        (
            lambda d: d["program"]["nodes"][2]["signature"]["inputs"][0].update(type="int"),
            "the program graph is not well-formed: type mismatch: expected int for 'question'",
        ),
    ],
)
def test_a_damaged_graph_is_refused_saying_where(tmp_path: Path, change: Any, message: str) -> None:
    path = written(tmp_path, change)

    with pytest.raises(ArtifactError) as raised:
        read_artifact(path)

    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nope\.json: no such file"):
        read_artifact(tmp_path / "nope.json")


# programs ----------------------------------------------------------------------------------------


def test_load_program_file_reads_an_artifact_as_its_program(tmp_path: Path) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    learned = with_learned_params(program.ir)
    write_artifact(tmp_path / "rag.json", artifact_of(program, learned))

    loaded = load_program_file(tmp_path / "rag.json")

    assert loaded.name == "MultiHopRAG"
    assert loaded.ir == learned
    assert loaded.inputs == program.inputs
    assert loaded.outputs == program.outputs
    assert loaded.metric == program.metric
    assert loaded.to_lmp() == program.to_lmp()
    assert load_program_file(tmp_path / "rag.json", "MultiHopRAG").ir == learned


def test_load_program_file_reads_lmp_text(tmp_path: Path) -> None:
    (tmp_path / "qa.lmp").write_text(QA, encoding="utf-8")

    assert load_program_file(tmp_path / "qa.lmp") == lmc.loads(QA)


def test_asking_an_artifact_for_another_program_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path / "qa.json", artifact_of(lmc.loads(QA)))

    with pytest.raises(ArtifactError, match="the artifact holds program 'QA', not 'RAG'"):
        load_program_file(tmp_path / "qa.json", "RAG")


def test_a_source_that_does_not_match_the_graph_is_refused(tmp_path: Path) -> None:
    other = QA.replace("question: str) ->", "question: str, n: int) ->")
    artifact = artifact_of(lmc.loads(QA), source=other)
    write_artifact(tmp_path / "qa.json", artifact)

    with pytest.raises(
        ArtifactError,
        match=r"declares QA\(question: str, n: int\) -> \(answer: str\), but its program graph is QA\(question: str\)",
    ):
        load_program_file(tmp_path / "qa.json")


def test_a_source_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path / "qa.json", artifact_of(lmc.loads(QA), source="program {"))

    with pytest.raises(ArtifactError, match=r"its \.lmp source does not parse"):
        load_program_file(tmp_path / "qa.json")


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


def compiled_qa() -> Artifact:
    program = lmc.loads(QA)
    graph = program.ir.copy()
    graph.params["gen"] = StepParams(
        instruction="Answer like a librarian.",
        demos=(Demo((("question", "Who wrote Hamlet?"), ("answer", "Shakespeare"))),),
    )
    return artifact_of(program, graph)


def test_run_an_artifact_uses_the_learned_demos_and_instruction(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_artifact("qa.json", compiled_qa())

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
    write_artifact("qa.json", compiled_qa())
    Path("in.jsonl").write_text('{"question": "a"}\n{"question": "b"}\n', encoding="utf-8")

    code, _, _ = lmc_cli(capsys, "run", "qa.json", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_OK
    lines = [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]
    assert [line["outputs"] for line in lines] == [{"answer": "echo a"}, {"answer": "echo b"}]


def test_show_an_artifact(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    program = lmc.load(EXAMPLES / "rag" / "program.lmp")
    write_artifact("rag.json", artifact_of(program, with_learned_params(program.ir)))

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
