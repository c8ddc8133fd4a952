"""The DSPy surface a porter reaches for: `lmc.Example`, `lmc.Evaluate`, `program.batch` and
`acall`, and compiles that show their progress from Python."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM


def test_an_example_reads_as_attributes_and_as_a_dict() -> None:
    example = lmc.Example(question="Capital of France?", answer="Paris").with_inputs("question")

    assert (example.question, example["answer"]) == ("Capital of France?", "Paris")
    assert dict(example.inputs()) == {"question": "Capital of France?"}
    assert dict(example.labels()) == {"answer": "Paris"}
    assert example.toDict() == {"question": "Capital of France?", "answer": "Paris"}


def test_naming_an_input_it_does_not_have_is_an_error() -> None:
    with pytest.raises(KeyError, match="'query'"):
        lmc.Example(question="q").with_inputs("query")


def test_inputs_before_with_inputs_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"with_inputs\('question'\)"):
        lmc.Example(question="q").inputs()


QA_PROGRAM = (
    'signature QA = "question -> answer"\n'
    "program P(question: str) -> (answer: str) {\n"
    "    gen = predict QA(question=question)\n"
    "    return answer = gen.answer\n"
    "}\n"
)


def test_compile_takes_examples_as_it_takes_dicts() -> None:
    program = lmc.loads(QA_PROGRAM)
    train = [
        lmc.Example(question=f"q{i}", answer="Paris").with_inputs("question") for i in range(4)
    ]
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    compiled = lmc.compile(
        program,
        trainset=train,
        metric="exact_match(answer)",
        pipeline="bootstrap-demos",
        lm=lmc.context(fake, cache=False),
    )

    assert compiled.log[0].metric_after == 1.0


def test_a_dataset_may_be_given_by_its_jsonl_path(tmp_path: Path) -> None:
    program = lmc.loads(QA_PROGRAM)
    data = tmp_path / "dev.jsonl"
    data.write_text(
        '{"question": "France?", "answer": "Paris"}\n{"question": "Italy?", "answer": "Rome"}\n'
    )
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    result = lmc.Evaluate(devset=str(data), metric="exact_match(answer)")(
        program, context=lmc.context(fake, cache=False)
    )

    assert [s for _, _, s in result.results] == [1.0, 0.0]


@pytest.mark.parametrize("bad", [["not a record"], [{"question": "q"}, 42]])
def test_a_record_that_is_no_dict_is_an_input_error_naming_it(bad: list[object]) -> None:
    program = lmc.loads(QA_PROGRAM)

    with pytest.raises(lmc.InputError, match=f"train record {len(bad)}: expected a dict"):
        lmc.compile(
            program,
            trainset=bad,
            metric="exact_match(answer)",
            lm=lmc.context(FakeLM(lambda r: "{}"), cache=False),
        )


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (float("nan"), "a number that is not finite"),
        (datetime.date(2026, 12, 1), "Object of type date"),
        ({"scores": [1.0, float("inf")]}, "a number that is not finite"),
    ],
    ids=["nan", "date", "nested-infinity"],
)
def test_a_record_json_cannot_hold_is_refused_before_any_call(value: object, said: str) -> None:
    # A pandas frame's empty cell is NaN: it would reach a demo and stop the artifact's write.
    program = lmc.loads(QA_PROGRAM)
    fake = FakeLM(lambda r: '{"answer": "Paris"}')
    trainset = [{"question": "France?", "answer": "Paris"}, {"question": "q", "answer": value}]

    with pytest.raises(lmc.InputError, match=f"train record 2: 'answer' holds {said}"):
        lmc.compile(program, trainset=trainset, metric="exact_match(answer)", lm=lmc.context(fake))
    assert fake.requests == []


def test_evaluate_scores_records_with_nan_as_dspy_does() -> None:
    # Nothing an evaluation scores is saved: a pandas frame's empty cell is no reason to refuse.
    program = lmc.loads(QA_PROGRAM)
    devset = [{"question": "France?", "answer": "Paris", "notes": float("nan")}]
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    result = lmc.Evaluate(devset=devset, metric="exact_match(answer)")(
        program, context=lmc.context(fake, cache=False)
    )

    assert [s for _, _, s in result.results] == [1.0]


def test_evaluate_scores_a_program_as_dspy_reports_it() -> None:
    program = lmc.loads(QA_PROGRAM)
    devset = [
        lmc.Example(question="France?", answer="Paris").with_inputs("question"),
        lmc.Example(question="Italy?", answer="Rome").with_inputs("question"),
    ]
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    def exact(example: lmc.Example, prediction: lmc.Prediction, trace: object = None) -> bool:
        return bool(example.answer == prediction.answer)

    result = lmc.Evaluate(devset=devset, metric=exact, num_threads=2)(
        program, context=lmc.context(fake, cache=False)
    )
    shown = lmc.Evaluate(devset=devset, metric=exact, display_progress=True)(
        program, context=lmc.context(fake, cache=False)
    )

    assert shown == result  # the bar (on a terminal) changes nothing else

    assert result.score == 50.0
    assert [(e.question, p.answer if p else None, s) for e, p, s in result.results] == [
        ("France?", "Paris", 1.0),
        ("Italy?", "Paris", 0.0),
    ]


def test_evaluate_scores_an_example_its_metric_raises_on_0_and_the_rest_as_usual() -> None:
    program = lmc.loads(QA_PROGRAM)
    devset = [lmc.Example(question=q, answer="Paris").with_inputs("question") for q in "abc"]
    fake = FakeLM(lambda request: '{"answer": "Paris"}')

    def exact_but_b(example: lmc.Example, prediction: lmc.Prediction) -> bool:
        if example.question == "b":
            raise KeyError("b")
        return bool(example.answer == prediction.answer)

    result = lmc.Evaluate(devset=devset, metric=exact_but_b)(
        program, context=lmc.context(fake, cache=False)
    )

    assert result.score == 66.67
    assert [(e.question, p.answer if p else None, s) for e, p, s in result.results] == [
        ("a", "Paris", 1.0),
        ("b", "Paris", 0.0),
        ("c", "Paris", 1.0),
    ]


QA = (
    'signature QA = "question -> answer"\n'
    "program P(question: str) -> (answer: str) {\n"
    "    gen = predict QA(question=question)\n"
    "    return answer = gen.answer\n"
    "}\n"
)


def test_batch_answers_every_example_in_order_with_none_for_a_failure() -> None:
    program = lmc.loads(QA)

    def reply(request: LMRequest) -> str:  # the question "boom" never gets a usable reply
        asked = " ".join(m.content for m in request.messages)
        return "not json" if "boom" in asked else '{"answer": "ok"}'

    fake = FakeLM(reply)
    examples = [lmc.Example(question="a"), {"question": "boom"}, {"question": "c"}]

    results = program.batch(examples, num_threads=2, context=lmc.context(fake, cache=False))

    assert results == [lmc.Prediction(answer="ok"), None, lmc.Prediction(answer="ok")]


def test_acall_runs_without_blocking_the_event_loop() -> None:
    import asyncio

    program = lmc.loads(QA)
    lmc.configure(FakeLM(lambda request: '{"answer": "ok"}'), cache=False)

    async def main() -> list[object]:
        return list(await asyncio.gather(program.acall(question="a"), program.acall(question="b")))

    assert asyncio.run(main()) == [lmc.Prediction(answer="ok")] * 2


def test_compile_in_python_shows_its_progress_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeLM(lambda request: '{"answer": "Paris"}')
    train = [{"question": f"q{i}", "answer": "Paris"} for i in range(4)]

    lmc.compile(
        lmc.loads(QA),
        trainset=train,
        metric="exact_match(answer)",
        pipeline="bootstrap-demos",
        lm=lmc.context(fake, cache=False),
    )

    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("lmc: projected LM calls: baseline on dev ≤")
    assert any(
        line.startswith("lmc: bootstrap-demos: dev exact_match(answer) 1.000 -> 1.000")
        for line in lines
    )


def test_an_eager_step_takes_any_value_into_a_text_field_as_a_program_does() -> None:
    fake = FakeLM(lambda request: '{"reasoning": "it says so", "answer": "Paris"}')
    lmc.configure(fake, cache=False)
    generate_answer = lmc.ChainOfThought("context, question -> answer")  # context: str

    passages = ["Paris is in France.", "Rome is in Italy."]
    assert generate_answer(context=passages, question="Where is Paris?").answer == "Paris"
    assert "[1] Paris is in France.\n[2] Rome is in Italy." in fake.requests[0].messages[-1].content
    with pytest.raises(lmc.InputError, match="n: Input should be a valid integer"):
        lmc.Predict("n: int -> m")(n="many")
    with pytest.raises(TypeError, match='"n: int -> m" needs n; it takes n'):
        lmc.Predict("n: int -> m")()


def test_demos_set_on_a_step_are_in_its_prompt_and_in_the_program_it_builds(
    tmp_path: Path,
) -> None:
    class QA(lmc.Module):
        def __init__(self) -> None:
            self.answer = lmc.Predict("question -> answer")

        def forward(self, question: str) -> lmc.Prediction:
            return self.answer(question=question)

    fake = FakeLM(lambda request: '{"answer": "Rome"}')
    lmc.configure(fake, cache=False)
    qa = QA()
    qa.answer.demos = [lmc.Example(question="Capital of France?", answer="Paris", source="atlas")]
    qa.answer.instruction = "Answer with a city."

    assert qa(question="Capital of Italy?").answer == "Rome"
    system, demo_question, demo_answer, _ = fake.requests[0].messages
    assert system.content.startswith("Answer with a city.")
    assert "Capital of France?" in demo_question.content
    assert demo_answer.content == '{"answer": "Paris"}'  # only the step's fields

    qa.save(tmp_path / "qa.lmp")
    program = lmc.load(tmp_path / "qa.lmp")
    assert program.answer.instruction == "Answer with a city."
    assert [dict(d) for d in program.answer.demos] == [
        {"question": "Capital of France?", "answer": "Paris"}
    ]
    assert QA().load(tmp_path / "qa.lmp").answer.demos == program.answer.demos


def test_a_module_reaching_a_step_by_two_attributes_loads_its_own_save(tmp_path: Path) -> None:
    class QA(lmc.Module):
        def __init__(self) -> None:
            super().__init__()
            self.answer = lmc.Predict("question -> answer")
            self.steps = [self.answer]  # the same step, reached a second way

        def forward(self, question: str) -> lmc.Prediction:
            return self.answer(question=question)

    qa = QA()
    qa.answer.instruction = "Answer with a city."
    qa.save(tmp_path / "qa.lmp")

    assert QA().load(tmp_path / "qa.lmp").answer.instruction == "Answer with a city."


def test_a_nearest_pool_loads_into_a_step_and_builds_back_with_it(tmp_path: Path) -> None:
    class QA(lmc.Module):
        def __init__(self) -> None:
            self.answer = lmc.Predict("question -> answer")

        def forward(self, question: str) -> lmc.Prediction:
            return self.answer(question=question)

    (tmp_path / "qa.lmp").write_text(
        "program QA(question: str) -> (answer: str) {\n"
        '    answer = predict "question -> answer"(question=question) {\n'
        "        nearest 1 by bm25 {\n"
        '            demo { question: "Capital of France?", answer: "Paris" }\n'
        '            demo { question: "Author of Hamlet?", answer: "Shakespeare" }\n'
        "        }\n"
        "    }\n"
        "    return answer = answer.answer\n"
        "}\n",
        encoding="utf-8",
    )
    program = lmc.load(tmp_path / "qa.lmp")
    fake = FakeLM(lambda request: '{"answer": "Rome"}')
    lmc.configure(fake, cache=False)

    qa = QA().load(tmp_path / "qa.lmp")
    qa(question="Capital of Italy?")

    assert program.answer.nearest is not None
    assert qa.answer.nearest == program.answer.nearest
    _, demo_question, _, _ = fake.requests[0].messages
    assert "Capital of France?" in demo_question.content
    assert lmc.build(qa) == program
