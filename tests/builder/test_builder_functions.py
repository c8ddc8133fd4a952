"""`@lmc.function` in Python programs: a typed function traced into a call node, the same program
as the `.lmp` form, run by the runtime; plain Python outside `lmc.build`; and a clear way out
when `forward` tries to compute on a traced value."""

from __future__ import annotations

from typing import NamedTuple

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM


@lmc.function
def count_words(text: str) -> int:
    """How many words a text has."""
    return len(text.split())


class Parts(NamedTuple):
    first: str
    rest: str


@lmc.function
def split_first(text: str) -> Parts:
    head, _, tail = text.partition(" ")
    return Parts(head, tail)


class Answer(lmc.Signature):
    question: str = lmc.InputField()
    words: int = lmc.InputField()
    answer: str = lmc.OutputField()


class CountThenAnswer(lmc.Module):
    def __init__(self) -> None:
        self.answer = lmc.Predict(Answer)

    def forward(self, question: str) -> lmc.Prediction:
        words = count_words(question)
        return self.answer(question=question, words=words)


LMP = '''
function count_words = "MODULE:count_words" {
    """How many words a text has."""
    input  text:   str
    output result: int
}

signature Answer = "question, words: int -> answer"

program CountThenAnswer(question: str) -> (answer: str) {
    count_words_2 = call count_words(text=question)
    answer = predict Answer(question=question, words=count_words_2.result)
    return answer = answer.answer
}
'''


def test_a_decorated_function_is_a_call_node_like_the_lmp_form() -> None:
    built = lmc.build(CountThenAnswer())

    written = lmc.loads(LMP.replace("MODULE", count_words.spec.target.split(":")[0]))

    assert built == written


def test_outside_build_a_decorated_function_is_the_plain_function() -> None:
    assert count_words("one two three") == 3
    assert count_words.__doc__ == "How many words a text has."


def test_a_built_program_runs_its_functions() -> None:
    fake = FakeLM(lambda request: '{"answer": "three"}')
    program = lmc.build(CountThenAnswer())

    result = program.run({"question": "one two three"}, lmc.context(fake, cache=False))

    assert result == lmc.Prediction(answer="three")
    assert "3" in fake.requests[0].messages[-1].content


def test_a_record_return_type_gives_results_read_as_attributes() -> None:
    class FirstWord(lmc.Module):
        def forward(self, text: str) -> lmc.Prediction:
            parts = split_first(text)
            return lmc.Prediction(first=parts.first, rest=parts.rest)

    program = lmc.build(FirstWord())

    assert [f.name for f in program.outputs] == ["first", "rest"]
    assert program.run({"text": "hello big world"}, lmc.context(FakeLM(), cache=False)) == (
        lmc.Prediction(first="hello", rest="big world")
    )


def branch(pred: lmc.Prediction) -> str:
    if pred.answer == "yes":
        return "agreed"
    return "refused"


def loop(pred: lmc.Prediction) -> str:
    while pred.answer:
        break
    return "done"


@pytest.mark.parametrize(
    ("what", "use"),
    [
        ("comparing", branch),  # the branch a DSPy program takes on an answer
        ("testing", loop),
        ("calling .upper() on", lambda pred: pred.answer.upper()),
        ("calling .split() on", lambda pred: pred.answer.split(",")),
        ("indexing", lambda pred: pred.answer[:10]),
        ("arithmetic on", lambda pred: pred.answer * 2),
        ("arithmetic on", lambda pred: 1 - pred.answer),
        ("formatting", lambda pred: f"answer: {pred.answer}"),
        ("testing membership in", lambda pred: "x" in pred.answer),
        ("converting", lambda pred: int(pred.answer)),
    ],
)
def test_python_on_a_traced_value_is_refused_with_what_to_do_instead(
    what: str, use: object
) -> None:
    class Uses(lmc.Module):
        def __init__(self) -> None:
            self.step = lmc.Predict("question -> answer")

        def forward(self, question: str) -> lmc.Prediction:
            pred = self.step(question=question)
            return lmc.Prediction(answer=use(pred))  # type: ignore[operator]

    with pytest.raises(TypeError) as raised:
        lmc.build(Uses())

    message = str(raised.value)
    assert message.startswith(f"{what} a traced value (answer)"), message
    assert "decorate it with @lmc.function" in message
