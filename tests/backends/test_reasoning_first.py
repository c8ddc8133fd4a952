"""A chain of thought on the `json` backend: the reasoning is written as plain text, then the
JSON object of the other outputs. Inside a JSON string a small model writes a plan and jumps to
the answer; these tests hold the layout a user's CoT steps now get, on every kind of model."""

from __future__ import annotations

import json

import pytest
from faultserver import FaultServer, reply

from lmc.backends.base import LMRequest, Message, ReplyError, StepView
from lmc.backends.clients import local
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.served import ServedLM
from lmc.backends.completion import CompletionBackend
from lmc.backends.json_object import JsonBackend, reasons_first
from lmc.backends.schema import MAX_REASONING
from lmc.ir.graph import StepParams
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import INT, STR

SOLVE = SignatureSpec(
    "SolveMath",
    (FieldSpec("question", STR),),
    (FieldSpec("answer", INT, "The final answer."),),
    "Solve the math word problem.",
)
COT = StepView(SOLVE, "chain_of_thought", StepParams())
PREDICT = StepView(SOLVE, "predict", StepParams())


def parse(text: str) -> dict[str, object]:
    return JsonBackend().parse(COT, text)


def test_only_a_step_whose_first_output_is_its_reasoning_reasons_first() -> None:
    assert reasons_first(COT)
    assert not reasons_first(PREDICT)
    only_reasoning = SignatureSpec("Think", (FieldSpec("q", STR),), (FieldSpec("reasoning", STR),))
    assert not reasons_first(StepView(only_reasoning, "predict", StepParams()))


def test_the_reasoning_is_the_text_before_the_object() -> None:
    text = "Tom has 3 apples.\nHe buys 4 more: 3 + 4 = 7.\n\n" + '{"answer": 7}'
    assert parse(text) == {
        "reasoning": "Tom has 3 apples.\nHe buys 4 more: 3 + 4 = 7.",
        "answer": 7,
    }


def test_braces_and_objects_in_the_reasoning_do_not_end_it() -> None:
    # Qwen writes LaTeX; a model may quote JSON while it thinks. The object is the one the
    # reply ends with.
    text = (
        'Half of 6 is \\frac{6}{2} = 3; as data, {"half": 3}. So the answer is 3.\n'
        '```json\n{"answer": 3}\n```\n'
    )
    parsed = parse(text)
    assert parsed["answer"] == 3
    assert (
        parsed["reasoning"]
        == 'Half of 6 is \\frac{6}{2} = 3; as data, {"half": 3}. So the answer is 3.'
    )


def test_a_reply_with_its_reasoning_inside_the_object_is_still_read() -> None:
    # What the layout asked for before, and what a model may still write.
    assert parse('{"reasoning": "3 + 4 = 7", "answer": 7}') == {
        "reasoning": "3 + 4 = 7",
        "answer": 7,
    }


def test_a_reply_that_never_reaches_its_object_is_refused_for_repair() -> None:
    with pytest.raises(ReplyError, match="not a JSON object"):
        parse("Tom has 3 apples. He buys 4 more, so 3 + 4 =")
    with pytest.raises(ReplyError, match="'answer'"):
        parse('Nothing to add. {"result": 7}')


@pytest.mark.parametrize("backend", [JsonBackend, CompletionBackend])
def test_the_request_asks_for_plain_reasoning_then_the_object(backend: type[JsonBackend]) -> None:
    lm = FakeLM(template="{{ messages[-1]['content'] }}")
    request = backend().lower(COT, {"question": "What is 3 + 4?"}, lm)
    assert request.reasoning_first == MAX_REASONING
    assert request.reply_schema is None  # no schema describes text then an object
    assert request.json_schema is not None
    assert list(json.loads(request.json_schema)["properties"]) == ["answer"]
    assert request.to_json()["reasoning_first"] == MAX_REASONING  # so the cache tells layouts apart


def test_a_server_is_not_asked_to_hold_a_reply_that_opens_with_reasoning(
    fault_server: FaultServer,
) -> None:
    fault_server.otherwise = reply('3 + 4 = 7.\n\n{"answer": 7}')
    lm = ServedLM("openai/x", fault_server.url)
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "integer"}}})
    messages = (Message("user", "What is 3 + 4?"),)

    lm.complete(LMRequest(messages=messages, json_schema=schema, reasoning_first=MAX_REASONING))
    lm.complete(LMRequest(messages=messages, json_schema=schema))

    free, held = fault_server.requests
    assert "response_format" not in free.body
    assert held.body["response_format"]["type"] == "json_schema"


def test_the_embedded_model_is_held_to_reasoning_without_braces_then_the_object() -> None:
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "integer"}}})
    gbnf = local._gbnf(LMRequest(json_schema=schema, reasoning_first=MAX_REASONING))
    assert gbnf is not None
    lines = gbnf.splitlines()
    assert lines[:2] == [
        "root ::= lmc-reasoning lmc-reply-object",
        f"lmc-reasoning ::= [^{{]{{1,{MAX_REASONING}}}",
    ]
    assert any(line.startswith('lmc-reply-object ::= "{"') for line in lines)
    assert sum(line.startswith("root ::=") for line in lines) == 1
    local._llama_grammar(gbnf)  # llama.cpp reads it
    assert local._gbnf(LMRequest(json_schema=schema)) == local._schema_gbnf(schema)
