"""Python functions as steps of a program: declared in `.lmp` with typed parameters and results,
called like steps, run by the runtime (at once where independent), traced, and reported by name
when they fail. The LM here is a `FakeLM`; the functions are real (`tests/pyfunctions.py`)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime.executor import run_records
from lmc.runtime.functions import FunctionFailed, FunctionUnavailable

COUNT = '''
function CountWords = "pyfunctions:{name}" {{
    """How many words a text has."""
    input  text: str
    output n:    int
}}

signature Answer = "question, words: int -> answer"

program P(question: str) -> (answer: str, words: int) {{
    counted = call CountWords(text=question)
    gen = predict Answer(question=question, words=counted.n)
    return answer = gen.answer, words = counted.n
}}
'''


def answering(request: object) -> str:
    return '{"answer": "fine"}'


def run(source: str, inputs: dict[str, str], **options: object) -> lmc.Prediction:
    context = lmc.context(FakeLM(answering), cache=False, **options)  # type: ignore[arg-type]
    return lmc.loads(source).run(inputs, context)


def test_a_function_step_feeds_its_typed_result_to_the_next_step() -> None:
    fake = FakeLM(answering)

    result = lmc.loads(COUNT.format(name="count_words")).run(
        {"question": "how many words here"}, lmc.context(fake, cache=False)
    )

    assert result == lmc.Prediction(answer="fine", words=4)
    prompt = json.dumps(fake.requests[0].to_json())
    assert "4" in prompt


def test_a_list_given_to_a_text_parameter_arrives_as_the_text_a_step_would_show() -> None:
    # Any value may flow into `str`; the function declared `text: str` gets text, not a list.
    program = COUNT.format(name="count_words").replace(
        "counted = call CountWords(text=question)",
        'counted = call CountWords(text=[question, "and one more"])',
    )

    assert run(program, {"question": "a b"}).words == 7  # "[1] a b", "[2] and one more"


def test_a_function_that_raises_fails_its_step_naming_the_function() -> None:
    with pytest.raises(FunctionFailed) as raised:
        run(COUNT.format(name="refuse"), {"question": "a b"})

    assert str(raised.value) == (
        "step 'counted': function pyfunctions:refuse raised ValueError: cannot count 'a b'"
    )


def test_a_result_that_does_not_fit_its_declared_type_fails_the_step() -> None:
    with pytest.raises(
        FunctionFailed, match=r"pyfunctions:not_a_number returned a value that does not fit: n: "
    ):
        run(COUNT.format(name="not_a_number"), {"question": "a b"})


def test_a_function_nobody_can_import_is_named_with_what_to_do() -> None:
    with pytest.raises(FunctionUnavailable, match=r"cannot import nowhere_module .*PYTHONPATH"):
        run(COUNT.format(name="x").replace("pyfunctions:x", "nowhere_module:x"), {"question": "a"})


def test_a_function_its_module_decorates_with_lmc_function_runs_from_lmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the module runs `@lmc.function`, which registers the function while lmc is still
    # importing it for the program: this used to wait on itself forever.
    (tmp_path / "decorated_tools.py").write_text(
        "import lmc\n\n@lmc.function\ndef count_words(text: str) -> int:\n"
        "    return len(text.split())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    source = COUNT.format(name="x").replace("pyfunctions:x", "decorated_tools:count_words")
    finished: list[lmc.Prediction] = []
    worker = threading.Thread(
        target=lambda: finished.append(run(source, {"question": "a b"})), daemon=True
    )
    worker.start()
    worker.join(timeout=30)

    assert finished == [lmc.Prediction(answer="fine", words=2)]


SPLIT = """
function SplitName = "pyfunctions:split_name" {
    input  name:  str
    output first: str
    output last:  str
}

program P(name: str) -> (first: str, last: str) {
    parts = call SplitName(name=name)
    return first = parts.first, last = parts.last
}
"""

STATS = """
function Stats = "pyfunctions:stats" {
    input  text:    str
    output words:   int
    output letters: int
}

program P(text: str) -> (words: int, letters: int) {
    counted = call Stats(text=text)
    return words = counted.words, letters = counted.letters
}
"""


def test_several_results_come_from_a_tuple_in_declared_order() -> None:
    assert run(SPLIT, {"name": "Ada Lovelace"}) == lmc.Prediction(first="Ada", last="Lovelace")


def test_several_results_come_from_an_object_s_attributes() -> None:
    assert run(STATS, {"text": "Ada Lovelace"}) == lmc.Prediction(words=2, letters=11)


def test_independent_function_calls_run_at_the_same_time() -> None:
    # Each call waits for the other at a barrier: run one after the other, both would time out.
    source = """
function Meet = "pyfunctions:meet" {
    input  text: str
    output loud: str
}

program P(a: str, b: str) -> (x: str, y: str) {
    first = call Meet(text=a)
    second = call Meet(text=b)
    return x = first.loud, y = second.loud
}
"""
    assert run(source, {"a": "hi", "b": "there"}) == lmc.Prediction(x="HI", y="THERE")


def test_each_call_is_traced_with_inputs_outputs_and_time(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    context = lmc.context(FakeLM(answering), cache=False, trace=str(trace))
    lmc.loads(COUNT.format(name="count_words")).run({"question": "one two"}, context)
    context.trace.close()  # type: ignore[union-attr]

    lines = [json.loads(line) for line in trace.read_text().splitlines()]

    call = next(line for line in lines if line.get("kind") == "function")
    assert (call["step"], call["function"], call["inputs"], call["outputs"], call["error"]) == (
        "counted",
        "pyfunctions:count_words",
        {"text": "one two"},
        {"n": 2},
        None,
    )
    assert call["seconds"] >= 0


def test_in_a_dataset_run_a_failing_function_fails_its_record_only() -> None:
    program = lmc.loads(COUNT.format(name="count_words").replace("count_words", "refuse"))
    context = lmc.context(FakeLM(answering), cache=False)

    async def collect() -> list[object]:
        return [
            r
            async for r in run_records(context, program.ir, [{"question": "a"}, {"question": "b"}])
        ]

    results = asyncio.run(collect())

    assert [r.error for r in results] == [  # type: ignore[attr-defined]
        "step 'counted': function pyfunctions:refuse raised ValueError: cannot count 'a'",
        "step 'counted': function pyfunctions:refuse raised ValueError: cannot count 'b'",
    ]


def test_in_a_dataset_run_a_function_that_calls_sys_exit_fails_its_record_only() -> None:
    program = lmc.loads(COUNT.format(name="count_unless_b"))
    context = lmc.context(FakeLM(answering), cache=False)

    async def collect() -> list[object]:
        records = [{"question": "a"}, {"question": "b"}, {"question": "c d"}]
        return [r async for r in run_records(context, program.ir, records)]

    results = asyncio.run(collect())

    assert [(r.outputs, r.error) for r in results] == [  # type: ignore[attr-defined]
        ({"answer": "fine", "words": 1}, None),
        (None, "step 'counted': function pyfunctions:count_unless_b called sys.exit(3)"),
        ({"answer": "fine", "words": 2}, None),
    ]


def test_a_program_with_functions_prints_and_reads_back_equal() -> None:
    program = lmc.loads(COUNT.format(name="count_words"))

    assert lmc.loads(program.to_lmp()) == program
    assert 'function CountWords = "pyfunctions:count_words" {' in program.to_lmp()
