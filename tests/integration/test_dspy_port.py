"""The DSPy port story, end to end: a RAG program written as DSPy's documentation writes it runs,
compiles with `BootstrapFewShot`, is scored by `Evaluate`, and is saved and loaded back answering
the same, with only `import lmc as dspy` and the LM line changed.

`port()` is the user's script; the tests run it once on a fake LM (every step checked, fast) and
once on the embedded model (`real_model`, at most 15 LM calls).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import lmc as dspy
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import main
from lmc.runtime.context import current_context

# The DSPy program, as DSPy's documentation writes it ---------------------------------------------

DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "Rome is the capital city of Italy.",
    "Berlin is the capital and largest city of Germany.",
    "Madrid is the capital and most populous city of Spain.",
    "Lisbon is the capital and largest city of Portugal.",
    "Tokyo is the capital of Japan.",
    "The Eiffel Tower is a wrought-iron tower in Paris.",
]


class DummyRetriever(dspy.Retrieve):
    def __init__(self, k=3):
        super().__init__(k=k)

    def forward(self, query, k=None):
        k = k if k is not None else self.k
        words = set(re.findall(r"\w+", query.lower()))
        ranked = sorted(
            DOCUMENTS, key=lambda doc: -len(words & set(re.findall(r"\w+", doc.lower())))
        )
        return dspy.Prediction(passages=ranked[:k])


class RAG(dspy.Module):
    def __init__(self, num_passages=3):
        super().__init__()
        self.retrieve = dspy.Retrieve(k=num_passages)
        self.generate_answer = dspy.ChainOfThought("context, question -> answer")

    def forward(self, question):
        context = self.retrieve(question).passages
        prediction = self.generate_answer(context=context, question=question)
        return dspy.Prediction(context=context, answer=prediction.answer)


def validate_answer(example, pred, trace=None):
    return example.answer.lower() in pred.answer.lower()


# Ten, as a DSPy user's trainset might be: split five and five, the fewest dev examples on which a
# compile can tell a gain from luck.
trainset = [
    dspy.Example(question="What is the capital of Italy?", answer="Rome").with_inputs("question"),
    dspy.Example(question="What is the capital of Spain?", answer="Madrid").with_inputs("question"),
    dspy.Example(question="What is the capital of Austria?", answer="Vienna").with_inputs(
        "question"
    ),
    dspy.Example(question="What is the capital of Germany?", answer="Berlin").with_inputs(
        "question"
    ),
    dspy.Example(question="What is the capital of France?", answer="Paris").with_inputs("question"),
    dspy.Example(question="What is the capital of Greece?", answer="Athens").with_inputs(
        "question"
    ),
    dspy.Example(question="What is the capital of Norway?", answer="Oslo").with_inputs("question"),
    dspy.Example(question="What is the capital of Poland?", answer="Warsaw").with_inputs(
        "question"
    ),
    dspy.Example(question="What is the capital of Egypt?", answer="Cairo").with_inputs("question"),
    dspy.Example(question="What is the capital of Peru?", answer="Lima").with_inputs("question"),
]
devset = [
    dspy.Example(question="What is the capital of Portugal?", answer="Lisbon").with_inputs(
        "question"
    ),
    dspy.Example(question="What is the capital of Japan?", answer="Tokyo").with_inputs("question"),
]
QUESTION = "What is the capital of Portugal?"


@dataclass
class Story:
    uncompiled: Any
    compiled: Any
    answer: Any
    score: Any
    loaded: Any
    loaded_answer: Any
    reloaded_answer: Any


def port(lm: Any, tmp_path: Path, train: list[Any] = trainset) -> Story:
    """The user's script: configure, run, compile, evaluate, save, load."""
    dspy.configure(lm=lm, rm=DummyRetriever())

    uncompiled = RAG()(question=QUESTION)

    teleprompter = dspy.BootstrapFewShot(
        metric=validate_answer, max_bootstrapped_demos=2, max_labeled_demos=2
    )
    compiled = teleprompter.compile(RAG(), trainset=train)
    answer = compiled(question=QUESTION).answer

    evaluate = dspy.Evaluate(
        devset=devset, metric=validate_answer, num_threads=2, display_progress=False
    )
    score = evaluate(compiled)

    compiled.save(tmp_path / "rag.json")
    loaded = RAG()
    loaded.load(tmp_path / "rag.json")
    loaded_answer = loaded(question=QUESTION).answer
    reloaded_answer = dspy.load(tmp_path / "rag.json")(question=QUESTION).answer

    return Story(uncompiled, compiled, answer, score, loaded, loaded_answer, reloaded_answer)


# On a fake LM ------------------------------------------------------------------------------------

CAPITALS = {
    "Italy": "Rome",
    "Spain": "Madrid",
    "Austria": "Vienna",
    "France": "Paris",
    "Germany": "Berlin",
    "Greece": "Athens",
    "Norway": "Oslo",
    "Poland": "Warsaw",
    "Egypt": "Cairo",
    "Peru": "Lima",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
}
# Train splits in two (no valset, as DSPy's compile takes none): France, Germany, Greece, Norway
# and Egypt bootstrap, and the fake knows France and Germany without demos, so those two runs pass
# and are the demos; Italy, Spain, Austria, Poland and Peru score the demo sets, answered only
# with demos.
KNOWN = {"France", "Germany"}


def fake_reply(request: LMRequest) -> str:
    asked = request.messages[-1].content.split("question:")[-1]
    country = next(c for c in CAPITALS if c in asked)
    has_demos = len(request.messages) > 2
    answer = CAPITALS[country] if has_demos or country in KNOWN else "I do not know"
    return json.dumps(
        {"reasoning": f"The context names the capital of {country}.", "answer": answer}
    )


def test_a_dspy_rag_program_ports_with_its_imports_and_lm_line_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLM(fake_reply)

    story = port(fake, tmp_path)

    assert story.uncompiled.answer == "I do not know"
    assert story.uncompiled.context[0] == "Lisbon is the capital and largest city of Portugal."
    # The teacher's passing runs are the demos: readable as DSPy reads them.
    demos = story.compiled.generate_answer.demos
    assert [(d.question, d.answer) for d in demos] == [
        ("What is the capital of France?", "Paris"),
        ("What is the capital of Germany?", "Berlin"),
    ]
    assert demos[0].context[0] == "Paris is the capital and largest city of France."
    assert demos[0].reasoning == "The context names the capital of France."
    assert dict(demos[0].inputs()) == {"context": demos[0].context, "question": demos[0].question}
    assert [name for name, _ in story.compiled.named_predictors()] == ["generate_answer"]
    assert story.answer == "Lisbon"
    assert story.score.score == 100.0
    assert [score for _, _, score in story.score.results] == [1.0, 1.0]
    # Loaded back the DSPy way (into a fresh module) and lmc's way: the same demos, and the same
    # prompt, so the compiled program, Evaluate and both loaded ones made one LM call for it.
    assert story.loaded.generate_answer.demos == demos
    assert story.loaded_answer == story.reloaded_answer == story.answer == "Lisbon"
    asked = [r for r in fake.requests if QUESTION in r.messages[-1].content]
    assert [len(r.messages) for r in asked] == [2, 2 + 2 * len(demos)]
    assert dspy.build(story.loaded) == story.compiled
    # The saved artifact runs from the command line too (its metric named by import path).
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: fake)
    capsys.readouterr()
    assert main(["run", str(tmp_path / "rag.json"), "--input", f"question={QUESTION}"]) == 0
    assert capsys.readouterr().out.endswith("answer: Lisbon\n")
    saved = json.loads((tmp_path / "rag.json").read_text(encoding="utf-8"))
    assert saved["metric"] == {"name": f"{__name__}:validate_answer", "field": None}


def test_a_step_a_program_does_not_have_is_named_with_the_ones_it_has(tmp_path: Path) -> None:
    dspy.configure(lm=FakeLM(fake_reply), rm=DummyRetriever())
    program = dspy.build(RAG())

    with pytest.raises(
        AttributeError, match="program RAG has no step 'answer'; its steps: generate_answer"
    ):
        _ = program.answer


def test_loading_a_program_whose_steps_differ_says_which_step(tmp_path: Path) -> None:
    class Other(dspy.Module):
        def __init__(self):
            self.generate_answer = dspy.Predict("question -> answer")

        def forward(self, question):
            return self.generate_answer(question=question)

    dspy.configure(lm=FakeLM(fake_reply), rm=DummyRetriever())
    dspy.build(RAG()).save(tmp_path / "rag.json")

    with pytest.raises(
        dspy.InputError,
        match=r"Other.generate_answer is predict \"question -> answer\", but the saved step 'generate_answer' is chain_of_thought",
    ):
        Other().load(tmp_path / "rag.json")


# On the embedded model ---------------------------------------------------------------------------


@pytest.mark.real_model
def test_the_port_runs_on_the_embedded_model(tmp_path: Path) -> None:
    # Four records keep its LM calls few; on two dev examples no demo set can show a gain, so
    # the compiled program may come back as it was, which the port must carry all the same.
    story = port(dspy.LM("local"), tmp_path, train=trainset[:4])

    assert isinstance(story.uncompiled.answer, str)
    assert isinstance(story.answer, str)
    for demo in story.compiled.generate_answer.demos:
        assert {"context", "question", "reasoning", "answer"} <= set(demo)
    assert 0.0 <= story.score.score <= 100.0
    assert len(story.score.results) == len(devset)
    assert story.loaded.generate_answer.demos == story.compiled.generate_answer.demos
    assert story.loaded_answer == story.reloaded_answer == story.answer
    calls = current_context().stats.total()
    assert calls.calls - calls.cache_hits <= 15
    assert calls.failures == 0
