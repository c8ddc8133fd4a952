"""A `react` step: an agent that calls its tools until it says it is done, then answers.

Each iteration's reply is held to a tool call (the name one of the tools or `finish`, the
arguments typed); the tool's result or error is the next observation; `finish` or `max_iters`
ends the loop and one more call writes the declared outputs. The LM is a scripted `FakeLM`; the
tools are real (`tests/pyfunctions.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import lmc
from lmc.backends.base import LMCallFailed, LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.ir.graph import Demo, StepNode
from lmc.ir.text import parse_program, print_program
from lmc.runtime.trace import read_trace, show_trace

AGENT = """
function Add = "pyfunctions:add" {
    \"\"\"Add two numbers.\"\"\"
    input  a:   float
    input  b:   float
    output sum: float
}

function Capital = "pyfunctions:capital" {
    \"\"\"The capital city of a country.\"\"\"
    input  country: str
    output city:    str
}

signature Solve {
    \"\"\"Answer the question.\"\"\"
    input  question: str
    output answer:   str
}

program Agent(question: str) -> (answer: str) {
    solved = react Solve(question=question) with tools=[Add, Capital], max_iters=MAX
    return answer = solved.answer
}
"""


def agent(max_iters: int = 3) -> lmc.Program:
    return lmc.loads(AGENT.replace("MAX", str(max_iters)))


def act(tool: str, **args: Any) -> str:
    return json.dumps({"thought": f"use {tool}", "action": {"tool": tool, "args": args}})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


def asks_for_action(request: LMRequest) -> bool:
    return "action" in json.loads(request.json_schema or "{}").get("properties", {})


def test_the_agent_calls_a_tool_reads_the_result_and_answers(tmp_path: Path) -> None:
    fake = FakeLM([act("Add", a=2, b="3.5"), act("finish"), answer("5.5")])
    trace = tmp_path / "trace.jsonl"

    result = agent().run(
        {"question": "What is 2 + 3.5?"}, lmc.context(fake, cache=False, trace=str(trace))
    )

    assert result == lmc.Prediction(answer="5.5")
    assert len(fake.requests) == 3
    second = json.dumps(fake.requests[1].to_json())
    assert 'Action 1: Add({\\"a\\": 2.0, \\"b\\": 3.5})' in second  # the arguments, typed
    assert "Observation 1: 5.5" in second
    last = json.dumps(fake.requests[2].to_json())
    assert "Action 2: finish" in last
    assert "answer" in last


def test_each_iteration_is_held_to_a_call_of_one_of_the_tools_with_typed_arguments() -> None:
    fake = FakeLM([act("finish"), answer("x")])
    agent().run({"question": "q"}, lmc.context(fake, cache=False))

    schema = json.loads(fake.requests[0].json_schema or "{}")
    calls = schema["properties"]["action"]["anyOf"]
    assert [c["properties"]["tool"]["enum"] for c in calls] == [["Add"], ["Capital"], ["finish"]]
    assert calls[0]["properties"]["args"]["properties"] == {
        "a": {"type": "number"},
        "b": {"type": "number"},
    }
    assert calls[0]["properties"]["args"]["required"] == ["a", "b"]


def test_a_local_model_is_held_to_the_tool_call_by_its_grammar() -> None:
    finish = '[[ ## thought ## ]]\nok\n\n[[ ## action ## ]]\n{"tool": "finish", "args": {}}'
    fake = FakeLM([finish, "[[ ## answer ## ]]\nx"], constrains=True)
    result = agent().run({"question": "q"}, lmc.context(fake, cache=False, backend="chat"))

    assert result.answer == "x"

    grammar = fake.requests[0].grammar or ""
    assert '"{\\"tool\\": \\"Capital\\", \\"args\\": {"' in grammar
    assert '"{\\"tool\\": \\"finish\\", \\"args\\": {"' in grammar


def test_a_tool_that_raises_is_an_observation_and_the_agent_goes_on() -> None:
    fake = FakeLM(
        [
            act("Capital", country="Atlantis"),
            act("Capital", country="France"),
            act("finish"),
            answer("Paris"),
        ]
    )

    result = agent().run({"question": "Capital of France?"}, lmc.context(fake, cache=False))

    assert result.answer == "Paris"
    third = json.dumps(fake.requests[2].to_json())
    assert "Observation 1: error: raised KeyError" in third
    assert "Observation 2: Paris" in third


def test_a_tool_that_calls_sys_exit_is_an_observation_and_the_agent_goes_on() -> None:
    fake = FakeLM(
        [
            act("Capital", country="Atlantis"),
            act("Capital", country="France"),
            act("finish"),
            answer("Paris"),
        ]
    )
    program = lmc.loads(AGENT.replace("MAX", "3").replace(":capital", ":capital_or_exit"))

    result = program.run({"question": "Capital of France?"}, lmc.context(fake, cache=False))

    assert result.answer == "Paris"
    third = json.dumps(fake.requests[2].to_json())
    assert "Observation 1: error: called sys.exit('no capital known for Atlantis')" in third


def test_max_iters_ends_the_loop_and_the_outputs_are_still_written() -> None:
    fake = FakeLM([act("Add", a=1, b=1)] * 2 + [answer("2")])

    result = agent(max_iters=2).run({"question": "1+1?"}, lmc.context(fake, cache=False))

    assert result.answer == "2"
    assert len(fake.requests) == 3  # two iterations, then the answer


def test_a_call_of_an_unknown_tool_gets_the_one_repair() -> None:
    fake = FakeLM([act("Multiply", a=2, b=3), act("finish"), answer("6")])

    result = agent().run({"question": "2*3?"}, lmc.context(fake, cache=False))

    assert result.answer == "6"
    repair = json.dumps(fake.requests[1].to_json())
    assert "unknown tool 'Multiply'; expected one of Add, Capital, finish" in repair


def test_the_trajectory_is_traced_and_drawn_by_trace_show(tmp_path: Path) -> None:
    fake = FakeLM([act("Capital", country="Italy"), act("finish"), answer("Rome")])
    trace = tmp_path / "trace.jsonl"
    agent().run({"question": "Capital of Italy?"}, lmc.context(fake, cache=False, trace=str(trace)))

    lines = read_trace(trace)
    kinds = [line.get("kind") for line in lines]
    assert kinds == [None, "function", None, None, "trajectory"]
    turns = lines[-1]["turns"]
    assert [t["tool"] for t in turns] == ["Capital", "finish"]
    assert turns[0]["args"] == {"country": "Italy"}
    assert turns[0]["observation"] == "Rome"
    assert lines[-1]["error"] is None

    console = Console(record=True, width=100)
    show_trace(lines, console)
    drawn = console.export_text()
    assert "solved · agent · 2 turns" in drawn
    assert 'call: Capital({"country": "Italy"})' in drawn
    assert "observed: Rome" in drawn


def refused_on_the_third_call(replies: list[str]) -> FakeLM:
    """Answers `replies` in turn; the third call fails as an unreachable model's does."""

    def reply(request: LMRequest) -> str:
        if len(fake.requests) == 3:
            raise LMCallFailed("model fake: connection refused")
        return replies[len(fake.requests) - 1]

    fake = FakeLM(reply)
    return fake


@pytest.mark.parametrize(
    ("max_iters", "fake", "error"),
    [
        pytest.param(
            3,
            refused_on_the_third_call([act("Capital", country="Italy"), act("Add", a=1, b=2)]),
            "step 'solved': model fake: connection refused",
            id="lm-call-fails-on-turn-3",
        ),
        pytest.param(
            2,
            FakeLM([act("Capital", country="Italy"), act("Add", a=1, b=2), "no", "still no"]),
            "step 'solved': the reply could not be used after one repair: ",
            id="the-answer-is-unusable-after-max-iters",
        ),
    ],
)
def test_an_agent_that_fails_partway_traces_the_turns_it_took_and_the_error(
    tmp_path: Path, max_iters: int, fake: FakeLM, error: str
) -> None:
    trace = tmp_path / "trace.jsonl"
    context = lmc.context(fake, cache=False, trace=str(trace))

    with pytest.raises(lmc.RunError) as raised:
        agent(max_iters).run({"question": "Capital of Italy?"}, context)

    (line,) = [line for line in read_trace(trace) if line.get("kind") == "trajectory"]
    assert [(t["tool"], t["observation"]) for t in line["turns"]] == [
        ("Capital", "Rome"),
        ("Add", 3.0),
    ]
    assert line["error"] == str(raised.value)
    assert line["error"].startswith(error)
    console = Console(record=True, width=200)
    show_trace([line], console)
    drawn = console.export_text()
    assert "solved · agent · 2 turns · failed" in drawn
    assert f"failed: {error}" in drawn


WORKED = {
    "question": "Capital of Italy?",
    "trajectory": [
        {
            "thought": "look it up",
            "tool": "Capital",
            "args": {"country": "Italy"},
            "observation": "Rome",
        },
        {"thought": "done", "tool": "finish", "args": {}, "observation": "done"},
    ],
    "answer": "Rome",
}


def with_worked_demo(program: lmc.Program) -> lmc.Program:
    graph = program.ir.copy()
    (step,) = graph.steps()
    graph.params[step.param_key] = graph.params[step.param_key].__class__(
        demos=(Demo(tuple(WORKED.items())),)
    )
    return lmc.Program(graph)


def test_a_worked_run_is_a_demo_for_every_turn_and_for_the_answer() -> None:
    fake = FakeLM([act("finish"), answer("Paris")])
    with_worked_demo(agent()).run(
        {"question": "Capital of France?"}, lmc.context(fake, cache=False)
    )

    first_turn = [m.content for m in fake.requests[0].messages]
    # the demo's two turns, each with the trajectory before it, then the real question
    assert sum("Capital of Italy?" in m for m in first_turn) == 2
    assert any('"tool": "Capital"' in m and "look it up" in m for m in first_turn)
    final = " ".join(m.content for m in fake.requests[1].messages)
    assert "Observation 1: Rome" in final
    assert "Rome" in final


def test_an_agent_with_learned_demos_prints_and_parses_back_equal() -> None:
    program = with_worked_demo(agent())
    text = print_program(program.ir)

    assert "react Solve(question=question) with tools=[Add, Capital], max_iters=3 {" in text
    assert '{"thought": "look it up", "tool": "Capital", "args": {"country": "Italy"}' in text
    assert parse_program(text) == program.ir
    (step,) = parse_program(text).steps()
    assert isinstance(step, StepNode)
    assert [t.target for t in step.options.tools] == [
        "pyfunctions:add",
        "pyfunctions:capital",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("react Solve(question=question)", "a react step needs tools"),
        (
            "react Solve(question=question) with tools=[Sub]",
            "unknown tool 'Sub'; expected one of 'Add' or 'Capital'",
        ),
        ("react Solve(question=question) with tools=[Add, Add]", "tool 'Add' is listed twice"),
        ("predict Solve(question=question) with tools=[Add]", "'tools' is an agent's option"),
        (
            "react Solve(question=question) with tools=[Add], max_iters=0",
            "expected a whole number from 1 to 50 for 'max_iters'",
        ),
        (
            "react Solve(question=question) with tools=[Add], n=3, temperature=1",
            "an agent is not sampled",
        ),
    ],
)
def test_what_an_agent_step_gets_wrong_is_said_at_its_line(line: str, message: str) -> None:
    source = AGENT.replace(
        "react Solve(question=question) with tools=[Add, Capital], max_iters=MAX", line
    )
    with pytest.raises(lmc.ProgramError) as raised:
        lmc.loads(source)
    assert message in str(raised.value)
    assert str(raised.value).startswith("<string>:22:")


# The Python API ----------------------------------------------------------------------------------


def add_numbers(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@lmc.tool
def capital_of(country: str) -> str:
    """The capital city of a country."""
    return {"france": "Paris"}.get(country.lower(), "unknown")


class Solver(lmc.Module):
    def __init__(self) -> None:
        self.agent = lmc.ReAct("question -> answer", tools=[add_numbers, capital_of], max_iters=3)

    def forward(self, question: str) -> lmc.Prediction:
        return self.agent(question=question)


def test_react_in_python_builds_the_same_step_as_in_lmp() -> None:
    program = lmc.build(Solver())

    (step,) = program.ir.steps()
    assert step.module == "react"
    assert [t.name for t in step.options.tools] == ["add_numbers", "capital_of"]
    assert step.options.max_iters == 3
    text = program.to_lmp()
    assert (
        'agent = react "question -> answer"(question=question) '
        "with tools=[add_numbers, capital_of], max_iters=3"
    ) in text
    assert 'function add_numbers = "test_agent:add_numbers"' in text


def test_react_runs_plain_functions_as_tools_in_python() -> None:
    fake = FakeLM([act("add_numbers", a=1, b=2), act("finish"), answer("3")])

    with lmc.configure(lm=fake, cache=False):
        direct = lmc.ReAct("question -> answer", tools=[add_numbers], max_iters=3)(question="1+2?")

    assert direct.answer == "3"
    assert "Observation 1: 3.0" in json.dumps(fake.requests[1].to_json())


def test_predict_takes_decoding_options_and_refuses_others() -> None:
    step = lmc.Predict("question -> answer", temperature=0.7, n=3)
    assert (step.options.temperature, step.options.n) == (0.7, 3)
    with pytest.raises(TypeError, match="got top_p; it takes a signature and the decoding options"):
        lmc.Predict("question -> answer", top_p=0.9)
    with pytest.raises(ValueError, match="needs at least one tool"):
        lmc.ReAct("question -> answer", tools=[])


def test_the_steps_decoding_options_reach_every_call_of_the_agent() -> None:
    program = lmc.loads(
        AGENT.replace("max_iters=MAX", "max_iters=3, temperature=0.7, max_tokens=50")
    )
    fake = FakeLM([act("Add", a=1, b=2), act("finish"), answer("3")])

    program.run({"question": "1 + 2?"}, lmc.context(fake, cache=False))

    assert [(r.temperature, r.max_tokens) for r in fake.requests] == [(0.7, 50)] * 3
