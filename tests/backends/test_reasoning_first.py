"""A chain of thought on the `json` backend: the reasoning is written as plain text, then the
JSON object of the other outputs. Inside a JSON string a small model writes a plan and jumps to
the answer; these tests hold the layout a user's CoT steps now get, on every kind of model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from faultserver import FaultServer, reply, status

import lmc
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
TEXT_ANSWER = StepView(
    SignatureSpec("Solve", (FieldSpec("question", STR),), (FieldSpec("answer", STR),)),
    "chain_of_thought",
    StepParams(),
)
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
    assert reasoned.body["grammar"] == reply_grammar(REASONED, steered=False)
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
    assert lines[:4] == [
        "root ::= lmc-reasoning [ \\t]* lmc-reply-object lmc-reply-end",
        'lmc-reasoning ::= lmc-line ("\\n" "\\n"? lmc-line)* "\\n" "\\n"?',
        "lmc-line ::= [ \\t]* [^{ \\t\\n] [^\\n]*",
        'lmc-reply-end ::= "\\n"? ("```" "\\n"?)?',  # a code fence opened for it, closed
    ]
    assert any(line.startswith('lmc-reply-object ::= "{"') for line in lines)
    assert sum(line.startswith("root ::=") for line in lines) == 1
    assert reply_grammar(LMRequest(json_schema=schema)) == schema_gbnf(schema)


def test_a_server_may_end_a_held_reply_after_its_reasoning() -> None:
    # Nothing on a server steers a reasoning to its object; held from stopping, Qwen wrote on
    # to `max_tokens`. A reply that stops early gets the repair call, which asks for the object.
    request = LMRequest(json_schema=SCHEMA, reasoning_first=MAX_PLAIN_REASONING)
    served = reply_grammar(request, steered=False)
    assert served is not None
    first_rule = "root ::= lmc-reasoning ([ \\t]* lmc-reply-object lmc-reply-end)?"
    assert served.splitlines()[0] == first_rule
    assert served.splitlines()[1:] == str(reply_grammar(request)).splitlines()[1:]


def test_a_held_text_field_takes_a_number_as_the_parser_does() -> None:
    # Made to open a quote where it would write `220`, Qwen wrote `"220.0000…` to the bound.
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "string"}}})
    gbnf = schema_gbnf(schema)
    (rule,) = [line for line in gbnf.splitlines() if line.startswith("answer ::=")]
    assert rule.endswith("| number")
    reply = 'Two seasons of 110 miles.\n{"answer": 220}'
    assert JsonBackend().parse(TEXT_ANSWER, reply)["answer"] == "220"
    labels = {"type": "object", "properties": {"label": {"enum": ["yes", "no"]}}}
    assert "number" not in schema_gbnf(json.dumps(labels))


def test_a_held_string_takes_no_raw_control_character() -> None:
    # JSON does not; under llama-cpp-python's own rule Qwen wrote new lines into a string until
    # `max_tokens`. (The embedded model's test refuses a new line there on its vocabulary.)
    schema = json.dumps({"type": "object", "properties": {"answer": {"type": "string"}}})
    (rule,) = [line for line in schema_gbnf(schema).splitlines() if line.startswith("char ::=")]
    assert rule.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |')


def test_a_reply_without_its_object_is_repaired_by_asking_for_the_object_alone() -> None:
    step = TEXT_ANSWER
    backend, lm = JsonBackend(), FakeLM(constrains=True)
    request = backend.lower(step, {"question": "What is 3 + 4?"}, lm)
    first = "3 + 4 = 7, so the answer is \\boxed{7}."
    with pytest.raises(ReplyError) as caught:
        backend.parse(step, first)

    follow_up = backend.repair(step, request, first, caught.value, lm)

    assert follow_up.reasoning_first == 0  # the reasoning is written; the object alone
    assert follow_up.reply_schema == request.json_schema
    assert follow_up.max_tokens < request.max_tokens
    assert follow_up.messages[-2] == Message("assistant", first)
    assert backend.parse_repaired(step, '{"answer": "7"}', first) == {
        "reasoning": first,
        "answer": "7",
    }
    # A follow-up that reasons again keeps its own reasoning.
    again = backend.parse_repaired(step, 'So 7.\n{"answer": "7"}', first)
    assert again["reasoning"] == "So 7."


def test_a_repaired_chain_of_thought_keeps_the_reasoning_its_first_reply_wrote() -> None:
    program = lmc.loads(
        """
signature Solve = "question -> answer"

program P(question: str) -> (reasoning: str, answer: str) {
    s = chain_of_thought Solve(question=question)
    return reasoning = s.reasoning, answer = s.answer
}
"""
    )
    first = "3 + 4 = 7, so the answer is \\boxed{7}."
    fake = FakeLM([first, '{"answer": "7"}'], constrains=True)
    context = lmc.context(fake, cache=False)

    outputs = program.run({"question": "What is 3 + 4?"}, context)

    assert outputs == lmc.Prediction(reasoning=first, answer="7")
    assert fake.requests[1].reasoning_first == 0
    assert context.stats.steps["s"].repairs == 1
