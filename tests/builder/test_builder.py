"""The Python builder API: a DSPy program ports by changing imports and gives the same program
as its `.lmp` twin."""

from __future__ import annotations

from typing import Literal

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.types import BOOL, FLOAT, INT, STR, ListOf, OneOf, OptionalOf


class GenerateAnswer(lmc.Signature):
    """Answer the question using only the retrieved context."""

    context: list[str] = lmc.InputField(desc="Relevant passages.")
    question: str = lmc.InputField()
    answer: str = lmc.OutputField(desc="A short factual answer, a few words.")


class RAG(lmc.Module):
    def __init__(self) -> None:
        self.retrieve = lmc.Retrieve(k=3, index=lmc.bm25("corpus.jsonl", name="wiki"))
        self.generate_answer = lmc.ChainOfThought(GenerateAnswer)

    def forward(self, question: str) -> lmc.Prediction:
        context = self.retrieve(question).passages
        prediction = self.generate_answer(context=context, question=question)
        return lmc.Prediction(answer=prediction.answer)


RAG_LMP = '''
signature GenerateAnswer {
    """Answer the question using only the retrieved context."""
    input  context:  list[str]  "Relevant passages."
    input  question: str
    output answer:   str        "A short factual answer, a few words."
}

index wiki = bm25("corpus.jsonl", text="text")

program RAG(question: str) -> (answer: str) {
    passages = retrieve wiki(query=question, k=3)
    gen = chain_of_thought GenerateAnswer(context=passages, question=question)
    return answer = gen.answer
}
'''


class Summarize(lmc.Signature):
    """Summarize the document in two sentences."""

    document: str = lmc.InputField()
    summary: str = lmc.OutputField()


class Critique(lmc.Signature):
    """Say whether the summary is faithful to the document."""

    document: str = lmc.InputField()
    summary: str = lmc.InputField()
    faithful: bool = lmc.OutputField(desc="True if every claim is in the document.")


class SummarizeThenCritique(lmc.Module):
    def __init__(self) -> None:
        self.summarize = lmc.ChainOfThought(Summarize)
        self.critique = lmc.ChainOfThought(Critique)

    def forward(self, document: str) -> lmc.Prediction:
        summary = self.summarize(document=document)
        verdict = self.critique(document=document, summary=summary.summary)
        return lmc.Prediction(summary=summary.summary, faithful=verdict.faithful)


TWO_STEP_LMP = '''
signature Summarize = "document -> summary"

signature Critique {
    """Say whether the summary is faithful to the document."""
    input  document: str
    input  summary:  str
    output faithful: bool "True if every claim is in the document."
}

program SummarizeThenCritique(document: str) -> (summary: str, faithful: bool) {
    s = chain_of_thought Summarize(document=document)
    c = chain_of_thought Critique(document=document, summary=s.summary)
    return summary = s.summary, faithful = c.faithful
}
'''


def test_rag_program_is_the_same_written_either_way() -> None:
    assert lmc.build(RAG()) == lmc.loads(RAG_LMP)


def test_two_step_chain_of_thought_is_the_same_written_either_way() -> None:
    # Summarize's instruction differs from the .lmp short form, which has none: not equal.
    assert lmc.build(SummarizeThenCritique()) != lmc.loads(TWO_STEP_LMP)
    instructed = TWO_STEP_LMP.replace(
        'signature Summarize = "document -> summary"',
        'signature Summarize {\n"""Summarize the document in two sentences."""\n'
        "input document: str\noutput summary: str\n}",
    )
    assert lmc.build(SummarizeThenCritique()) == lmc.loads(instructed)


def test_a_built_program_prints_as_lmp_that_loads_back_equal() -> None:
    for module in (RAG(), SummarizeThenCritique()):
        program = lmc.build(module)
        assert lmc.loads(program.to_lmp()) == program


class Shift(lmc.Signature):
    """Shift the number."""

    n: int = lmc.InputField()
    by: float = lmc.InputField()
    shifted: float = lmc.OutputField()


class ShiftBack(lmc.Module):
    def __init__(self, by: float) -> None:
        super().__init__()
        self.by = by
        self.shift = lmc.Predict(Shift)

    def forward(self, n: int) -> lmc.Prediction:
        return self.shift(n=n, by=self.by)


def test_a_negative_constant_prints_as_lmp_that_loads_back_equal() -> None:
    built = lmc.build(ShiftBack(-1.5))

    assert "by=-1.5" in built.to_lmp()
    assert lmc.loads(built.to_lmp()) == built


def test_a_constant_no_lmp_text_can_hold_is_refused_where_it_is_passed() -> None:
    with pytest.raises(lmc.ProgramError, match="cannot pass inf into a traced program"):
        lmc.build(ShiftBack(float("inf")))


def test_a_name_lmp_cannot_spell_is_refused_where_it_is_given() -> None:
    # The program would run, but its artifact would be .lmp text naming a field `input`.
    class Echo(lmc.Signature):
        """Echo."""

        input: str = lmc.InputField()
        réponse: str = lmc.OutputField()

    class Echoing(lmc.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gen = lmc.Predict(Echo)

        def forward(self, question: str) -> lmc.Prediction:
            return self.gen(input=question)

    with pytest.raises(lmc.ProgramError) as raised:
        lmc.build(Echoing())

    rendered = raised.value.render()
    assert "signature Echo's field 'input' is not a name .lmp can spell (a keyword" in rendered
    assert "field 'réponse' is not a name .lmp can spell (ASCII letters" in rendered
    assert "test_builder.py:" in rendered  # at the class, in the user's file


def test_an_index_named_after_its_file_gets_a_name_lmp_can_spell() -> None:
    assert lmc.bm25("index.jsonl").name == "index_"
    assert lmc.bm25("2024 café.jsonl").name == "index_2024_caf"


def test_signature_class_carries_fields_types_descriptions_and_instruction() -> None:
    class Classify(lmc.Signature):
        """Classify the sentiment."""

        text: str = lmc.InputField()
        label: Literal["positive", "negative"] = lmc.OutputField()
        confidence: float | None = lmc.OutputField(desc="0 to 1")
        tags: list[str] = lmc.OutputField()
        count: int = lmc.OutputField()
        sarcastic: bool = lmc.OutputField()

    spec = Classify.spec
    assert spec.name == "Classify"
    assert spec.instruction == "Classify the sentiment."
    assert [f.name for f in spec.inputs] == ["text"]
    assert [(f.name, f.type) for f in spec.outputs] == [
        ("label", OneOf(("positive", "negative"))),
        ("confidence", OptionalOf(FLOAT)),
        ("tags", ListOf(STR)),
        ("count", INT),
        ("sarcastic", BOOL),
    ]
    assert spec.outputs[1].desc == "0 to 1"


def test_string_signature_matches_inline_lmp_signature() -> None:
    class QA(lmc.Module):
        def __init__(self) -> None:
            self.answer = lmc.Predict("context: list[str], question -> answer")

        def forward(self, question: str) -> lmc.Prediction:
            return lmc.Prediction(answer=self.answer(context=[], question=question).answer)

    lmp = """
    program QA(question: str) -> (answer: str) {
        a = predict "context: list[str], question -> answer"(context=[], question=question)
        return answer = a.answer
    }
    """
    assert lmc.build(QA()) == lmc.loads(lmp)


def test_a_module_called_in_a_loop_shares_parameters_like_an_lmp_loop() -> None:
    class Refine(lmc.Module):
        def __init__(self) -> None:
            self.improve = lmc.Predict("draft, question -> better")

        def forward(self, question: str) -> lmc.Prediction:
            draft = question
            for _ in range(2):
                draft = self.improve(draft=draft, question=question).better
            return lmc.Prediction(answer=draft)

    lmp = """
    program Refine(question: str) -> (answer: str) {
        draft = question
        for i in range(2) {
            step = predict "draft, question -> better"(draft=draft, question=question)
            draft = step.better
        }
        return answer = draft
    }
    """
    built = lmc.build(Refine())
    assert built == lmc.loads(lmp)
    assert len({s.param_key for s in built.ir.steps()}) == 1
    assert lmc.loads(built.to_lmp()) == built


def test_an_earlier_call_of_a_rebound_step_stays_readable() -> None:
    class TwoDrafts(lmc.Module):
        def __init__(self) -> None:
            self.write = lmc.Predict("question -> draft")

        def forward(self, question: str) -> lmc.Prediction:
            first = self.write(question=question)
            second = self.write(question=first.draft)
            return lmc.Prediction(first=first.draft, second=second.draft)

    program = lmc.build(TwoDrafts())
    reloaded = lmc.loads(program.to_lmp())
    assert reloaded == program
    outputs = {n.name: src for n in program.ir.outputs() for src, _ in program.ir.incoming(n.id)}
    assert outputs["first"] != outputs["second"]


def test_returning_a_step_result_names_its_declared_outputs() -> None:
    class Direct(lmc.Module):
        def __init__(self) -> None:
            self.generate_answer = lmc.ChainOfThought(GenerateAnswer)

        def forward(self, question: str) -> object:
            return self.generate_answer(context=[question], question=question)

    program = lmc.build(Direct())
    assert [f.name for f in program.outputs] == ["answer"]


def test_mistakes_in_python_programs_point_at_the_python_line() -> None:
    class Broken(lmc.Module):
        def __init__(self) -> None:
            self.generate_answer = lmc.Predict(GenerateAnswer)

        def forward(self, question: str) -> lmc.Prediction:
            prediction = self.generate_answer(context=question, question=question)
            return lmc.Prediction(answer=prediction.answer)

    with pytest.raises(lmc.ProgramError) as caught:
        lmc.build(Broken())
    message = caught.value.render()
    assert "test_builder.py:" in message
    assert "type mismatch: 'context' expects list[str], found str" in message
    assert "self.generate_answer(context=question, question=question)" in message


def test_unknown_output_field_is_an_attribute_error_with_a_suggestion() -> None:
    class Typo(lmc.Module):
        def __init__(self) -> None:
            self.generate_answer = lmc.Predict(GenerateAnswer)

        def forward(self, question: str) -> lmc.Prediction:
            prediction = self.generate_answer(context=[], question=question)
            return lmc.Prediction(answer=prediction.answr)

    with pytest.raises(AttributeError, match="did you mean 'answer'"):
        lmc.build(Typo())


def test_branching_on_a_traced_value_is_refused_with_an_explanation() -> None:
    class Branchy(lmc.Module):
        def __init__(self) -> None:
            self.check = lmc.Predict("question -> ok: bool")

        def forward(self, question: str) -> lmc.Prediction:
            if self.check(question=question).ok:
                return lmc.Prediction(answer=question)
            return lmc.Prediction(answer="no")

    with pytest.raises(TypeError, match="traced value"):
        lmc.build(Branchy())


def test_unsupported_field_type_is_reported_at_class_definition() -> None:
    with pytest.raises(lmc.ProgramError, match="field 'when'"):

        class Bad(lmc.Signature):
            question: str = lmc.InputField()
            when: dict[str, str] = lmc.OutputField()


def test_calling_a_step_outside_build_runs_it_on_the_current_context() -> None:
    fake = FakeLM(['{"answer": "Paris"}'])
    with lmc.configure(fake, cache=False):
        prediction = lmc.Predict(GenerateAnswer)(context=["Paris is in France."], question="q")
    assert prediction == lmc.Prediction(answer="Paris")
    assert "Paris is in France." in fake.requests[0].messages[-1].content
