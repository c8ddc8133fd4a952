"""A retriever written in Python, as DSPy programs write one (a `Retrieve` subclass whose
`forward` searches the user's own documents), is a `retrieve` step of the program: traced, run
with its `k`, counted, and printed as `index NAME = python("module:Class")`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime.functions import FunctionFailed

DOCUMENTS = [
    "The Eiffel Tower is in Paris.",
    "Paris is the capital of France.",
    "The Colosseum is in Rome.",
]


class DummyRetriever(lmc.Retrieve):
    """Passages that share a word with the query, best first."""

    def __init__(self, k: int = 3) -> None:
        super().__init__(k=k)

    def forward(self, query: str, k: int | None = None) -> lmc.Prediction:
        words = set(query.lower().split())
        ranked = sorted(DOCUMENTS, key=lambda d: -len(words & set(d.lower().split())))
        return lmc.Prediction(passages=ranked[: k or self.k])


class Broken(lmc.Retrieve):
    def forward(self, query: str) -> list[str]:
        raise ConnectionError("the vector database is down")


class Quits(lmc.Retrieve):
    def forward(self, query: str) -> list[str]:
        sys.exit("no index today")


class RAG(lmc.Module):
    def __init__(self, retriever: lmc.Retrieve) -> None:
        self.retrieve = retriever
        self.answer = lmc.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> lmc.Prediction:
        context = self.retrieve(question).passages
        return self.answer(context=context, question=question)


def answer_from_prompt(request: object) -> str:
    return json.dumps({"reasoning": "it says so", "answer": "Paris"})


def test_outside_build_the_retriever_answers_like_dspy() -> None:
    assert DummyRetriever(k=2)("Where is the Eiffel Tower?").passages == DOCUMENTS[:2]


def test_a_python_retriever_is_a_retrieve_step_of_the_program(tmp_path: Path) -> None:
    program = lmc.build(RAG(DummyRetriever(k=2)))
    trace = tmp_path / "trace.jsonl"
    fake = FakeLM(answer_from_prompt)
    context = lmc.context(fake, cache=False, trace=str(trace))

    result = program.run({"question": "Where is the Eiffel Tower?"}, context)
    context.trace.close()  # type: ignore[union-attr]

    assert result.answer == "Paris"
    assert "The Eiffel Tower is in Paris." in fake.requests[0].messages[-1].content
    assert context.stats.retrievals == 1
    retrieval = json.loads(trace.read_text().splitlines()[0])
    assert (retrieval["kind"], retrieval["k"], retrieval["passages"]) == (
        "retrieval",
        2,
        DOCUMENTS[:2],
    )


def test_it_prints_as_a_python_index_and_reads_back_equal() -> None:
    program = lmc.build(RAG(DummyRetriever(k=2)))
    text = program.to_lmp()

    assert f'index dummy_retriever = python("{__name__}:DummyRetriever", text="text")' in text
    assert lmc.loads(text) == program


class Shelf(lmc.Retrieve):
    """A retriever over the documents it is given: one class, many corpora."""

    def __init__(self, documents: list[str] | None = None) -> None:
        super().__init__(k=1)
        self.documents = documents or []

    def forward(self, query: str) -> list[str]:
        return self.documents


class TwoShelves(lmc.Module):
    def __init__(self, first: Shelf, second: Shelf) -> None:
        self.first, self.second = first, second
        self.answer = lmc.Predict("context: list[str], more: list[str], question -> answer")

    def forward(self, question: str) -> lmc.Prediction:
        return self.answer(
            context=self.first(question).passages,
            more=self.second(question).passages,
            question=question,
        )


def test_each_retriever_object_answers_for_its_own_program() -> None:
    # Two corpora behind one class, as when a notebook compares them: each program keeps its own.
    paris = lmc.build(RAG(Shelf(["The Eiffel Tower is in Paris."])))
    rome = lmc.build(RAG(Shelf(["The Colosseum is in Rome."])))
    fake = FakeLM(answer_from_prompt)
    context = lmc.context(fake, cache=False)

    paris.run({"question": "Where?"}, context)
    rome.run({"question": "Where?"}, context)

    prompts = [request.messages[-1].content for request in fake.requests]
    assert ("Paris" in prompts[0], "Rome" in prompts[0]) == (True, False)
    assert ("Paris" in prompts[1], "Rome" in prompts[1]) == (False, True)
    assert paris == rome  # the same program text: the object is not part of it


def test_two_retriever_objects_of_one_class_in_one_program_are_two_indexes() -> None:
    program = lmc.build(TwoShelves(Shelf(["in Paris"]), Shelf(["in Rome"])))
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    program.run({"question": "Where?"}, lmc.context(fake, cache=False))

    prompt = fake.requests[0].messages[-1].content
    assert prompt.index("in Paris") < prompt.index("in Rome")
    text = program.to_lmp()
    assert f'index shelf = python("{__name__}:Shelf"' in text
    assert f'index shelf_2 = python("{__name__}:Shelf"' in text
    assert lmc.loads(text) == program


def test_a_resumed_compile_keeps_the_retriever_object(tmp_path: Path) -> None:
    # The checkpoint is text; the object comes back by index name, not as the class's last one.
    from lmc.compiler import checkpoint
    from lmc.compiler.session import _start

    paris = lmc.build(RAG(Shelf(["The Eiffel Tower is in Paris."])))
    lmc.build(RAG(Shelf(["The Colosseum is in Rome."])))  # remembered last under Shelf's path
    saved_at = tmp_path / "compile.checkpoint.json"
    checkpoint.save(saved_at, checkpoint.Saved(paris.ir.copy(), [], 3, 0))

    resumed = _start(paris.ir, saved_at, True, lambda message: None, budgeted=False)

    assert resumed.program == paris.ir
    assert resumed.program.indexes["shelf"].bound is paris.ir.indexes["shelf"].bound


def test_a_program_with_a_retriever_object_is_not_sent_to_workers() -> None:
    from lmc.runtime.worker import NotForWorkers, program_text

    program = lmc.build(RAG(Shelf(["The Eiffel Tower is in Paris."])))

    with pytest.raises(NotForWorkers, match="index 'shelf' stays in this process"):
        program_text(program.ir)
    assert "python(" in program_text(lmc.loads(program.to_lmp()).ir)  # read from text: its class


@pytest.mark.parametrize(
    ("retriever", "said"),
    [
        (Broken, "Broken raised ConnectionError: the vector database is down"),
        (Quits, "Quits called sys.exit('no index today')"),  # not the end of the run
    ],
    ids=["raises", "sys-exit"],
)
def test_a_retriever_that_raises_fails_its_step_naming_it(
    retriever: type[lmc.Retrieve], said: str
) -> None:
    program = lmc.build(RAG(retriever()))

    with pytest.raises(FunctionFailed) as raised:
        program.run({"question": "q"}, lmc.context(FakeLM(answer_from_prompt), cache=False))

    assert str(raised.value) == f"step 'passages': retriever {__name__}:{said}"


class Colbertish:
    """A retrieval model as DSPy configures one (`rm=`): called with the query and k, answering
    dicts with `long_text`."""

    def __call__(self, query: str, k: int = 3) -> list[dict[str, str]]:
        return [{"long_text": d} for d in DOCUMENTS if "Paris" in d][:k]


def test_a_plain_retrieve_uses_the_configured_rm_as_dspy_does() -> None:
    class PlainRAG(lmc.Module):
        def __init__(self) -> None:
            self.retrieve = lmc.Retrieve(k=2)
            self.answer = lmc.ChainOfThought("context: list[str], question -> answer")

        def forward(self, question: str) -> lmc.Prediction:
            context = self.retrieve(question).passages
            return self.answer(context=context, question=question)

    fake = FakeLM(answer_from_prompt)
    lmc.configure(fake, cache=False, rm=Colbertish())

    assert lmc.Retrieve(k=1)("capital?").passages == ["The Eiffel Tower is in Paris."]
    program = lmc.build(PlainRAG())
    assert program(question="Where is the Eiffel Tower?").answer == "Paris"
    assert "Paris is the capital of France." in fake.requests[0].messages[-1].content


class NeedsAddress:
    def __init__(self, address: str) -> None:
        self.address = address

    def forward(self, query: str) -> list[str]:
        return DOCUMENTS


def test_a_retriever_class_that_cannot_be_made_with_its_defaults_fails_its_step() -> None:
    program = lmc.loads(
        f'index docs = python("{__name__}:NeedsAddress")\n'
        "program P(question: str) -> (passages: list[str]) {\n"
        "    found = retrieve docs(query=question, k=2)\n"
        "    return passages = found\n"
        "}\n"
    )

    with pytest.raises(
        FunctionFailed,
        match=r"NeedsAddress cannot be made with its defaults \(NeedsAddress\(\) raised TypeError: .*'address'\); give its parameters defaults",
    ):
        program.run({"question": "q"}, lmc.context(FakeLM(answer_from_prompt), cache=False))
