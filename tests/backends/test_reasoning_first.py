"""A chain of thought on the `json` backend: the reasoning is written as plain text, then the
JSON object of the other outputs. Inside a JSON string a small model writes a plan and jumps to
the answer; these tests hold the layout a user's CoT steps now get, on every kind of model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from faultserver import FaultServer, reply, status

from lmc.backends.base import LMRequest, Message, ReplyError, StepView
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.gbnf import reply_grammar, schema_gbnf
from lmc.backends.clients.hosted import HostedLM
from lmc.backends.clients.served import ServedLM
from lmc.backends.completion import CompletionBackend
from lmc.backends.json_object import JsonBackend, reasons_first
from lmc.backends.schema import MAX_PLAIN_REASONING
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
    assert request.reasoning_first == MAX_PLAIN_REASONING
    assert request.reply_schema is None  # no schema describes text then an object
    assert request.json_schema is not None
    assert list(json.loads(request.json_schema)["properties"]) == ["answer"]
    assert (
        request.to_json()["reasoning_first"] == MAX_PLAIN_REASONING
    )  # so the cache tells layouts apart


SCHEMA = json.dumps({"type": "object", "properties": {"answer": {"type": "integer"}}})
REASONED = LMRequest(
    messages=(Message("user", "What is 3 + 4?"),),
    json_schema=SCHEMA,
    reasoning_first=MAX_PLAIN_REASONING,
)


def test_a_served_model_is_held_to_the_reasoning_then_the_object_by_a_grammar(
    fault_server: FaultServer,
) -> None:
    # No JSON Schema describes text then an object; llama.cpp's servers take a GBNF grammar.
    fault_server.otherwise = reply('3 + 4 = 7.\n\n{"answer": 7}')
    lm = ServedLM("openai/x", fault_server.url)

    lm.complete(REASONED)
    lm.complete(replace(REASONED, reasoning_first=0))

    reasoned, plain = fault_server.requests
    assert reasoned.body["grammar"] == reply_grammar(REASONED)
    assert "response_format" not in reasoned.body
    assert plain.body["response_format"]["type"] == "json_schema"
    assert "grammar" not in plain.body


def test_a_server_that_refuses_a_grammar_is_asked_free_from_then_on(
    fault_server: FaultServer,
) -> None:
    fault_server.script(status(400, "Unrecognized request argument supplied: grammar"))
    fault_server.otherwise = reply('3 + 4 = 7.\n\n{"answer": 7}')
    lm = ServedLM("openai/x", fault_server.url)

    first = lm.complete(REASONED)
    lm.complete(REASONED)

    assert first.text.endswith('{"answer": 7}')
    refused, *free = fault_server.requests
    assert "grammar" in refused.body
    assert len(free) == 2
    assert all("grammar" not in sent.body and "response_format" not in sent.body for sent in free)


def test_a_hosted_api_is_asked_free() -> None:
    assert HostedLM("openai/x").reasoning_styles == ("free",)


def test_a_held_reply_is_reasoning_then_the_object_on_a_line_of_its_own() -> None:
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "integer"}}})
    gbnf = reply_grammar(LMRequest(json_schema=schema, reasoning_first=MAX_PLAIN_REASONING))
    assert gbnf is not None
    lines = gbnf.splitlines()
    assert lines[:3] == [
        "root ::= lmc-reasoning [ \\t]* lmc-reply-object",
        'lmc-reasoning ::= lmc-line ("\\n" "\\n"? lmc-line)* "\\n" "\\n"?',
        "lmc-line ::= [ \\t]* [^{ \\t\\n] [^\\n]*",
    ]
    assert any(line.startswith('lmc-reply-object ::= "{"') for line in lines)
    assert sum(line.startswith("root ::=") for line in lines) == 1
    assert reply_grammar(LMRequest(json_schema=schema)) == schema_gbnf(schema)
