"""Backends: the requests a step lowers to, how replies are parsed and repaired, and the registry.

Golden prompts live in `tests/backends/golden/prompts/<backend>/<case>.json`: each holds one lowered request
as readable JSON. Run with `LMC_UPDATE_GOLDEN=1` to (re)write them from the current behaviour, then
read every changed file: they are the exact text a (small) model reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import lmc
from lmc.backends.base import REPLY_TOKENS, Backend, LMRequest, Message, ReplyError, StepView
from lmc.backends.chat import COMPLETED, ChatBackend, marker
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.hosted import HostedLM
from lmc.backends.completion import (
    CompletionBackend,
    TemplateFailed,
    TemplateMissing,
    render_prompt,
)
from lmc.backends.json_object import JsonBackend
from lmc.backends.schema import (
    MAX_ITEMS,
    MAX_PLAIN_REASONING,
    MAX_REASONING,
    MAX_TEXT,
    MOST_REPLY_TOKENS,
    object_schema,
    reply_tokens,
)
from lmc.ir.graph import Demo, StepParams
from lmc.plugins import BACKENDS as REGISTERED
from lmc.plugins import UnknownName
from lmc.signatures import FieldSpec, ModuleKind, SignatureSpec
from lmc.types import BOOL, FLOAT, INT, STR, ListOf, LmType, OneOf, OptionalOf, ToolCall

GOLDEN = Path(__file__).parent / "golden" / "prompts"
UPDATE = os.environ.get("LMC_UPDATE_GOLDEN") == "1"

# The chat template SmolLM2-135M-Instruct ships in its GGUF metadata (the embedded default model).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

BACKENDS: dict[str, type[Backend]] = {
    "chat": ChatBackend,
    "json": JsonBackend,
    "completion": CompletionBackend,
}


def fake_lm(constrains: bool = False) -> FakeLM:
    return FakeLM(constrains=constrains, template=SMOLLM2_TEMPLATE)


def render(request: LMRequest) -> str:
    return json.dumps(request.to_json(), indent=2, ensure_ascii=False) + "\n"


# Steps -------------------------------------------------------------------------------------------

QA = SignatureSpec(
    "AnswerQuestion",
    (FieldSpec("question", STR, "A factual question."),),
    (FieldSpec("answer", STR, "A short answer, a few words at most."),),
    "Answer the question with a short factual answer.",
)
QA_INPUTS = {"question": "What is the capital of France?"}
QA_DEMOS = StepParams(
    demos=(
        Demo(fields=(("question", "Who wrote Hamlet?"), ("answer", "William Shakespeare"))),
        Demo(fields=(("question", "How many legs does a spider have?"), ("answer", "Eight"))),
    )
)
# A chain of thought's demos: one a teacher reasoned through, one only labelled.
COT_DEMOS = StepParams(
    demos=(
        Demo(
            fields=(
                ("question", "Who wrote Hamlet?"),
                ("reasoning", "Hamlet is a tragedy by the English playwright Shakespeare."),
                ("answer", "William Shakespeare"),
            )
        ),
        Demo(fields=(("question", "How many legs does a spider have?"), ("answer", "Eight"))),
    )
)

RAG = SignatureSpec(
    "AnswerFromPassages",
    (
        FieldSpec("question", STR),
        FieldSpec("passages", ListOf(STR), "Passages that may contain the answer."),
    ),
    (FieldSpec("answer", STR, "A short answer."),),
    "Answer the question using only the passages.",
)
RAG_INPUTS = {
    "question": "Where was Marie Curie born?",
    "passages": [
        "Marie Curie was born in Warsaw, in the Kingdom of Poland.",
        "She moved to Paris in 1891 to study at the Sorbonne.",
    ],
}

SENTIMENT = OneOf(("positive", "negative"))

MIXED = SignatureSpec(
    "Catalogue",
    (FieldSpec("text", STR, "A product review."),),
    (
        FieldSpec("title", STR, "A short title for the review."),
        FieldSpec("stars", INT, "Stars given, 1 to 5."),
        FieldSpec("price", FLOAT, "The price paid, in euros."),
        FieldSpec("recommends", BOOL, "Whether the reviewer recommends it."),
        FieldSpec("pros", ListOf(STR), "What the reviewer liked."),
        FieldSpec("sentiment", SENTIMENT),
        FieldSpec("year", OptionalOf(INT), "The year of purchase, if mentioned."),
    ),
    "Extract the facts of the review.",
)
MIXED_INPUTS = {
    "text": "Bought it in 2021 for 19.99. Light and quiet; 4 stars, would recommend to a friend."
}
MIXED_DEMO_VALUES: dict[str, Any] = {
    "text": "Paid 5 euros, broke in a week. One star.",
    "title": "Broke in a week",
    "stars": 1,
    "price": 5.0,
    "recommends": False,
    "pros": ["cheap", "light"],
    "sentiment": "negative",
    "year": None,
}


def one_output(name: str, t: LmType, desc: str | None, instruction: str) -> SignatureSpec:
    return SignatureSpec(None, (FieldSpec("text", STR),), (FieldSpec(name, t, desc),), instruction)


TEXT_INPUTS = {"text": "The bridge, finished in 1932, carries six lanes over the harbour."}

OUTPUT_TYPES: dict[str, SignatureSpec] = {
    "out_str": one_output("summary", STR, "One sentence.", "Summarise the text."),
    "out_int": one_output("lanes", INT, "How many lanes.", "Count the lanes."),
    "out_float": one_output("ratio", FLOAT, None, "Rate how technical the text is from 0 to 1."),
    "out_bool": one_output("about_bridge", BOOL, None, "Say whether the text is about a bridge."),
    "out_list_str": one_output("keywords", ListOf(STR), "Up to five.", "List the keywords."),
    "out_literal": one_output("sentiment", SENTIMENT, None, "Classify the sentiment."),
    "out_optional_int": one_output(
        "year", OptionalOf(INT), "The year it was finished.", "Find the year."
    ),
}


def step(signature: SignatureSpec, module: ModuleKind = "predict", **params: Any) -> StepView:
    return StepView(signature, module, StepParams(**params))


CASES: dict[str, tuple[StepView, dict[str, Any]]] = {
    "predict": (step(QA), QA_INPUTS),
    "chain_of_thought": (step(QA, "chain_of_thought"), QA_INPUTS),
    "demos": (StepView(QA, "predict", QA_DEMOS), QA_INPUTS),
    "chain_of_thought_demos": (StepView(QA, "chain_of_thought", COT_DEMOS), QA_INPUTS),
    **{name: (step(sig), TEXT_INPUTS) for name, sig in OUTPUT_TYPES.items()},
    "input_list": (step(RAG), RAG_INPUTS),
    "mixed": (step(MIXED), MIXED_INPUTS),
}
# Cases also lowered for a model that constrains decoding (the grammar or bounded schema appears).
CONSTRAINED: dict[str, tuple[str, ...]] = {
    "chat": ("mixed", "chain_of_thought"),
    "json": ("mixed", "chain_of_thought"),
    "completion": ("mixed",),
}

GOLDEN_KEYS: list[tuple[str, str, bool]] = [
    *((backend, case, False) for backend in BACKENDS for case in CASES),
    *((backend, case, True) for backend, cases in CONSTRAINED.items() for case in cases),
]
GOLDEN_CASES = [
    pytest.param(b, c, held, id=f"{b}/{c}{'_constrained' if held else ''}")
    for b, c, held in GOLDEN_KEYS
]


def golden_path(backend: str, case: str, constrained: bool) -> Path:
    return GOLDEN / backend / f"{case}{'_constrained' if constrained else ''}.json"


# 1. Golden lowered prompts -----------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "case", "constrained"), GOLDEN_CASES)
def test_lowered_prompt_matches_golden(backend: str, case: str, constrained: bool) -> None:
    view, inputs = CASES[case]
    request = BACKENDS[backend]().lower(view, inputs, fake_lm(constrained))
    rendered = render(request)
    path = golden_path(backend, case, constrained)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"missing {path.relative_to(GOLDEN)}; run with LMC_UPDATE_GOLDEN=1"
    assert rendered == path.read_text(encoding="utf-8")


def test_no_stale_golden_files() -> None:
    expected = {golden_path(*key).relative_to(GOLDEN) for key in GOLDEN_KEYS}
    on_disk = {p.relative_to(GOLDEN) for p in GOLDEN.rglob("*.json")}
    assert on_disk == expected


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_lowering_is_deterministic(backend: str) -> None:
    view, inputs = CASES["mixed"]
    first = BACKENDS[backend]().lower(view, inputs, fake_lm())
    second = BACKENDS[backend]().lower(view, dict(inputs), fake_lm())
    assert first == second
    assert hash(first) == hash(second)


def test_chat_constrained_request_carries_a_grammar_and_free_one_does_not() -> None:
    view, inputs = CASES["mixed"]
    free = ChatBackend().lower(view, inputs, fake_lm())
    held = ChatBackend().lower(view, inputs, fake_lm(constrains=True))
    assert free.grammar is None
    assert held.grammar is not None
    assert held.messages == free.messages
    assert held.grammar.count("::=") >= 2
    assert "root ::= " in held.grammar
    for f in view.outputs:
        assert json.dumps(marker(f.name) + "\n") in held.grammar
    assert json.dumps(COMPLETED) in held.grammar
    assert '"positive" | "negative"' in held.grammar


def test_a_served_model_gets_the_bounded_schema_and_a_hosted_api_the_plain_one() -> None:
    # A server one runs decodes under the schema: bounds keep a small model from looping inside
    # a string (Qwen2.5-0.5B did, to the token limit); a hosted API need not accept them.
    view, inputs = CASES["mixed"]
    served = HostedLM("openai/qwen", api_base="http://127.0.0.1:8080/v1")
    hosted = HostedLM("openai/gpt-4o-mini")

    assert "maxLength" in str(JsonBackend().lower(view, inputs, served).json_schema)
    assert "maxLength" not in str(JsonBackend().lower(view, inputs, hosted).json_schema)


@pytest.mark.parametrize("backend", ["json", "completion"])
def test_json_schema_is_bounded_only_when_the_model_enforces_it(backend: str) -> None:
    view, inputs = CASES["mixed"]
    free = BACKENDS[backend]().lower(view, inputs, fake_lm())
    held = BACKENDS[backend]().lower(view, inputs, fake_lm(constrains=True))
    assert free.json_schema is not None
    assert held.json_schema is not None
    free_schema, held_schema = json.loads(free.json_schema), json.loads(held.json_schema)
    assert "maxLength" not in free.json_schema
    assert "maxItems" not in free.json_schema
    props = held_schema["properties"]
    assert props["title"]["maxLength"] == MAX_TEXT
    assert props["pros"]["maxItems"] == MAX_ITEMS
    assert props["pros"]["items"]["maxLength"] == MAX_TEXT
    assert props["sentiment"]["enum"] == ["positive", "negative"]
    assert props["year"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    for schema in (free_schema, held_schema):
        assert list(schema["properties"]) == [f.name for f in view.outputs]
        assert schema["required"] == [f.name for f in view.outputs]
        assert schema["additionalProperties"] is False


@pytest.mark.parametrize("backend", ["json", "completion"])
def test_a_held_chain_of_thought_has_room_to_finish_its_sum(backend: str) -> None:
    view, inputs = CASES["chain_of_thought"]
    held = BACKENDS[backend]().lower(view, inputs, fake_lm(constrains=True))
    assert held.reasoning_first == MAX_PLAIN_REASONING > MAX_REASONING  # plain text first
    assert held.json_schema is not None
    props = json.loads(held.json_schema)["properties"]
    assert list(props) == ["answer"]
    assert props["answer"]["maxLength"] == MAX_TEXT


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_held_reply_has_the_tokens_its_bounds_need(backend: str) -> None:
    # A model looping on digits writes a token per character: 512 tokens cut a chain of thought
    # at its bound before the reply closed, and the record failed.
    view, inputs = CASES["chain_of_thought"]
    held = BACKENDS[backend]().lower(view, inputs, fake_lm(constrains=True))
    free = BACKENDS[backend]().lower(view, inputs, fake_lm())
    assert held.max_tokens > MAX_REASONING + MAX_TEXT
    # Free, a chain of thought is not bounded, and cut short it would never reach its answer:
    # it gets the most room any reply gets.
    assert free.max_tokens == MOST_REPLY_TOKENS


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_free_reply_without_reasoning_has_the_usual_tokens(backend: str) -> None:
    view, inputs = CASES["predict"]
    assert BACKENDS[backend]().lower(view, inputs, fake_lm()).max_tokens == REPLY_TOKENS


def test_reply_room_is_capped_where_bounds_allow_thousands_of_tokens() -> None:
    one_answer = (FieldSpec("answer", STR),)
    many_passages = (FieldSpec("passages", ListOf(STR)),)
    assert reply_tokens(one_answer, held=True) == REPLY_TOKENS
    assert MOST_REPLY_TOKENS == reply_tokens(many_passages, held=True) < MAX_ITEMS * MAX_TEXT


@pytest.mark.parametrize(
    "field",
    [
        FieldSpec("scores", ListOf(FLOAT)),  # 16 numbers of up to 52 characters each
        FieldSpec("maybe", OptionalOf(ListOf(FLOAT))),
        FieldSpec("action", ToolCall((("note", (("text", STR), ("weights", ListOf(FLOAT)))),))),
    ],
)
def test_every_value_a_held_grammar_allows_fits_its_reply_room(field: FieldSpec) -> None:
    # The longest JSON the grammar lets a looping model write, at one token a character.
    reply = f'{{"{field.name}": {_longest_json(field.type)}}}'
    assert len(reply) <= reply_tokens((field,), held=True)


def _longest_json(t: LmType) -> str:
    if isinstance(t, ListOf):
        return "[" + ", ".join([_longest_json(t.item)] * MAX_ITEMS) + "]"
    if isinstance(t, OptionalOf):
        return _longest_json(t.inner)
    if isinstance(t, ToolCall):
        name, params = t.tools[0]
        args = ", ".join(f'"{n}": {_longest_json(p)}' for n, p in params)
        return f'{{"tool": "{name}", "args": {{{args}}}}}'
    if t == FLOAT:  # llama.cpp's number: 16 digits, 16 decimals, an exponent of 16 digits
        return "-" + "9" * 16 + "." + "9" * 16 + "e-" + "9" * 16
    return '"' + "x" * MAX_TEXT + '"'


def test_only_a_steps_own_reasoning_gets_the_longer_bound() -> None:
    call = ToolCall((("note", (("reasoning", STR),)),))
    schema = object_schema((FieldSpec("action", call),), bounded=True)
    args = schema["properties"]["action"]["anyOf"][0]["properties"]["args"]
    assert args["properties"]["reasoning"]["maxLength"] == MAX_TEXT


def test_every_kind_of_type_and_every_scalar_has_a_schema_a_check_a_hint_and_a_grammar() -> None:
    # A new kind of type must say how a held model writes it and how a reply is checked and
    # described; a missing entry would otherwise let any value through (as `nothing` and
    # `unknown` do) or, for a scalar, surface as a KeyError on some user's program.
    from typing import get_args

    from lmc.backends import chat, schema
    from lmc.types import SCALAR_NAMES, Nothing, Scalar, Unknown

    kinds = set(get_args(LmType)) - {Nothing, Unknown}
    for table in (schema._SCHEMAS, schema._PYTHON_TYPES, schema._HINTS, chat._JSON_RULES):
        assert set(table) == kinds
    scalars = {Scalar(name) for name in SCALAR_NAMES}
    for by_scalar in (schema._JSON_TYPES, schema._PYTHON_SCALARS, schema._SCALAR_HINTS):
        assert set(by_scalar) == scalars
    assert set(chat._SCALAR_RULES) == scalars - {BOOL}  # true and false are written in place


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_inputs_come_last_and_demos_are_turns(backend: str) -> None:
    view, inputs = CASES["demos"]
    request = BACKENDS[backend]().lower(view, inputs, fake_lm())
    if backend == "completion":
        assert request.prompt is not None
        text = request.prompt
        assert text.endswith("<|im_start|>assistant\n")
        assert text.count("<|im_start|>user\n") == 3
        assert text.count("<|im_start|>assistant\n") == 3
        assert SMOLLM2_DEFAULT_SYSTEM not in text  # the step's own system prompt replaces it
        last_user = text.rindex("<|im_start|>user\n")
        assert QA_INPUTS["question"] in text[last_user:]
        assert QA_INPUTS["question"] not in text[:last_user]
        return
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert QA.instruction is not None
    assert QA.instruction in request.messages[0].content
    for f in (*QA.inputs, *QA.outputs):
        assert f.desc is not None
        assert f.desc in request.messages[0].content
    assert "Who wrote Hamlet?" in request.messages[1].content
    assert "William Shakespeare" in request.messages[2].content
    assert "Eight" in request.messages[4].content
    assert QA_INPUTS["question"] in request.messages[-1].content
    assert all(QA_INPUTS["question"] not in m.content for m in request.messages[:-1])


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_list_input_is_rendered_one_item_per_line(backend: str) -> None:
    view, inputs = CASES["input_list"]
    request = BACKENDS[backend]().lower(view, inputs, fake_lm())
    text = request.prompt if backend == "completion" else request.messages[-1].content
    assert text is not None
    lines = "\n".join(f"[{i}] {p}" for i, p in enumerate(RAG_INPUTS["passages"], 1))
    assert f"passages ## ]]\n{lines}\n" in text or f"passages:\n{lines}" in text
    assert "['Marie" not in text  # not a Python repr


def test_completion_without_a_template_names_the_way_out() -> None:
    view, inputs = CASES["predict"]
    with pytest.raises(TemplateMissing, match="--backend json or chat"):
        CompletionBackend().lower(view, inputs, FakeLM(identity="no-template-model"))


# Gemma's template refuses a system message as this one does; Mistral's refuses roles out of turn.
REFUSES_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
)


def test_a_template_that_refuses_a_system_message_reads_it_in_the_first_turn() -> None:
    view, inputs = CASES["predict"]
    request = CompletionBackend().lower(view, inputs, FakeLM(template=REFUSES_SYSTEM))
    system, user = request.messages
    assert request.prompt == f"<user>{system.content}\n\n{user.content}\n"


@pytest.mark.parametrize(
    ("template", "said"),
    [
        pytest.param(
            "{{ raise_exception('Tools only') }}{{ messages }}", "Tools only", id="raises"
        ),
        pytest.param("{% for m in messages %}{{ m['content'] }", "unexpected '}'", id="syntax"),
    ],
)
def test_a_chat_template_that_fails_is_a_run_error_naming_the_way_out(
    template: str, said: str
) -> None:
    view, inputs = CASES["predict"]
    lm = FakeLM(identity="gemma", template=template)
    with pytest.raises(TemplateFailed) as failed:
        CompletionBackend().lower(view, inputs, lm)
    assert said in str(failed.value)
    assert "gemma" in str(failed.value)
    assert "--backend json or chat" in str(failed.value)


def test_completion_prompt_is_the_json_messages_through_the_template() -> None:
    view, inputs = CASES["demos"]
    messages = tuple(JsonBackend().messages(view, inputs))
    request = CompletionBackend().lower(view, inputs, fake_lm())
    assert request.messages == messages
    assert request.prompt == render_prompt(SMOLLM2_TEMPLATE, messages)
    assert request.json_schema == JsonBackend().lower(view, inputs, fake_lm()).json_schema


# Demos round-trip: what a demo shows the model as a reply parses back to the demo's values ---------


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "chat",
        ),
        "json",
        "completion",
    ],
)
def test_demo_reply_parses_back_to_its_values(backend: str) -> None:
    demo = Demo(fields=tuple(MIXED_DEMO_VALUES.items()))
    view = StepView(MIXED, "predict", StepParams(demos=(demo,)))
    backend_ = BACKENDS[backend]()
    assert isinstance(backend_, ChatBackend | JsonBackend)
    messages = backend_.messages(view, MIXED_INPUTS)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    parsed = backend_.parse(view, messages[2].content)
    assert parsed == {f.name: MIXED_DEMO_VALUES[f.name] for f in MIXED.outputs}


# 2. Prefix reuse ---------------------------------------------------------------------------------

OTHER_QA_INPUTS = {"question": "Which planet is known as the Red Planet?"}


@pytest.mark.parametrize("backend", ["chat", "json"])
@pytest.mark.parametrize("constrained", [False, True])
def test_static_part_of_chat_messages_is_identical_across_calls(
    backend: str, constrained: bool
) -> None:
    view = StepView(QA, "chain_of_thought", QA_DEMOS)
    lm = fake_lm(constrained)
    first = BACKENDS[backend]().lower(view, QA_INPUTS, lm)
    second = BACKENDS[backend]().lower(view, OTHER_QA_INPUTS, lm)
    assert len(first.messages) == len(second.messages) >= 2
    assert first.messages[:-1] == second.messages[:-1]
    assert first.messages[-1] != second.messages[-1]
    assert first.messages[-1].role == "user"
    assert (first.grammar, first.json_schema) == (second.grammar, second.json_schema)
    static = "".join(m.content for m in first.messages[:-1])
    assert QA_INPUTS["question"] not in static
    assert OTHER_QA_INPUTS["question"] not in static


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_backend_that_lowered_a_step_before_lowers_it_anew_after_its_parameters_change(
    backend: str,
) -> None:
    # A backend keeps each step's static part; a learned instruction or demos must still show.
    used = BACKENDS[backend]()
    before = StepView(QA, "predict")
    learned = StepView(QA, "predict", StepParams("Answer in one word.", QA_DEMOS.demos))
    used.lower(before, QA_INPUTS, fake_lm())
    for view in (learned, before):
        for constrained in (False, True):
            again = used.lower(view, QA_INPUTS, fake_lm(constrained))
            assert again == BACKENDS[backend]().lower(view, QA_INPUTS, fake_lm(constrained))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_demo_holding_a_list_is_shown_on_every_call(backend: str) -> None:
    # A bootstrapped demo of a step with a list field holds a list: no key to remember it by.
    demo = Demo((*RAG_INPUTS.items(), ("answer", "Warsaw")))
    view = StepView(RAG, "predict", StepParams(demos=(demo,)))
    used = BACKENDS[backend]()
    first = used.lower(view, RAG_INPUTS, fake_lm())
    assert used.lower(view, RAG_INPUTS, fake_lm()) == first
    assert "She moved to Paris in 1891" in first.messages[1].content


def test_completion_prompts_share_the_whole_static_prefix() -> None:
    view = StepView(QA, "predict", QA_DEMOS)
    backend = CompletionBackend()
    first = backend.lower(view, QA_INPUTS, fake_lm())
    second = backend.lower(view, OTHER_QA_INPUTS, fake_lm())
    assert first.prompt is not None
    assert second.prompt is not None
    # Where the last user turn's content begins: everything before it is the static part.
    header = "<|im_start|>user\n"
    cut = first.prompt.rindex(header) + len(header)
    assert second.prompt.rindex(header) + len(header) == cut
    assert first.prompt[:cut] == second.prompt[:cut]
    static = first.prompt[:cut]
    assert backend.system_prompt(view) in static
    for demo in QA_DEMOS.demos:
        for _, value in demo.fields:
            assert value in static
    assert QA_INPUTS["question"] not in static
    assert first.json_schema == second.json_schema


# 3. Malformed replies ----------------------------------------------------------------------------


def single(t: LmType, name: str = "value") -> StepView:
    return StepView(SignatureSpec(None, (FieldSpec("text"),), (FieldSpec(name, t),)), "predict")


def chat_reply(**fields: str) -> str:
    return "\n\n".join(f"{marker(k)}\n{v}" for k, v in fields.items()) + f"\n\n{COMPLETED}"


PARSERS = ["chat", "json", "completion"]
JSON_PARSERS = ["json", "completion"]


def reply_in(backend: str, **fields: Any) -> str:
    """A reply with these raw field values: chat takes them as text, json as JSON values."""
    if backend == "chat":
        return chat_reply(
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        )
    return json.dumps(fields)


def assert_reply_error(backend: str, view: StepView, reply: str, *names: str) -> ReplyError:
    with pytest.raises(ReplyError) as caught:
        BACKENDS[backend]().parse(view, reply)
    error = caught.value
    assert error.reply == reply
    assert error.message == str(error)
    for name in names:
        assert name in error.message, f"{error.message!r} does not name {name!r}"
    return error


@pytest.mark.parametrize("backend", PARSERS)
def test_a_well_formed_reply_parses_to_typed_values(backend: str) -> None:
    view = step(MIXED)
    values = {
        "title": "Light and quiet",
        "stars": 4,
        "price": 19.99,
        "recommends": True,
        "pros": ["light", "quiet"],
        "sentiment": "positive",
        "year": 2021,
    }
    parsed = BACKENDS[backend]().parse(view, reply_in(backend, **values))
    assert parsed == values
    assert list(parsed) == [f.name for f in MIXED.outputs]
    assert type(parsed["stars"]) is int
    assert type(parsed["price"]) is float
    assert type(parsed["recommends"]) is bool


@pytest.mark.parametrize("backend", PARSERS)
def test_missing_field_is_named(backend: str) -> None:
    view = step(QA, "chain_of_thought")
    assert_reply_error(
        backend, view, reply_in(backend, reasoning="Paris is the capital."), "answer"
    )


@pytest.mark.parametrize("backend", PARSERS)
def test_missing_fields_never_become_none(backend: str) -> None:
    view = step(MIXED)
    reply = reply_in(
        backend, title="x", stars=1, price=1.0, recommends=True, pros=[], sentiment="positive"
    )
    assert_reply_error(backend, view, reply, "year")


@pytest.mark.parametrize("backend", PARSERS)
def test_required_field_given_null_is_an_error(backend: str) -> None:
    assert_reply_error(backend, single(INT, "count"), reply_in(backend, count=None), "count")
    assert_reply_error(backend, single(BOOL, "ok"), reply_in(backend, ok=None), "ok")
    if backend != "chat":  # chat takes a text field's text as it is: "null" is the string
        assert_reply_error(backend, single(STR, "answer"), reply_in(backend, answer=None), "answer")


@pytest.mark.parametrize("backend", PARSERS)
def test_wrong_type_for_int(backend: str) -> None:
    assert_reply_error(backend, single(INT, "count"), reply_in(backend, count="abc"), "count")


@pytest.mark.parametrize("backend", PARSERS)
def test_wrong_type_for_float_and_bool(backend: str) -> None:
    assert_reply_error(backend, single(FLOAT, "score"), reply_in(backend, score="high"), "score")
    assert_reply_error(backend, single(BOOL, "ok"), reply_in(backend, ok="perhaps"), "ok")


@pytest.mark.parametrize("backend", PARSERS)
def test_fractional_number_for_int_is_an_error(backend: str) -> None:
    assert_reply_error(backend, single(INT, "count"), reply_in(backend, count=3.5), "count")


@pytest.mark.parametrize("backend", PARSERS)
def test_bool_for_int_is_an_error(backend: str) -> None:
    assert_reply_error(backend, single(INT, "count"), reply_in(backend, count=True), "count")


@pytest.mark.parametrize("backend", PARSERS)
def test_literal_not_among_choices(backend: str) -> None:
    error = assert_reply_error(
        backend, single(SENTIMENT, "sentiment"), reply_in(backend, sentiment="neutral"), "sentiment"
    )
    assert "positive" in error.message
    assert "negative" in error.message


@pytest.mark.parametrize("backend", PARSERS)
@pytest.mark.parametrize(
    "written", ["Negative", '"negative"', "'negative'", "`negative`", "**negative**", "negative."]
)
def test_literal_in_other_case_or_quotes_is_the_choice(backend: str, written: str) -> None:
    view = single(SENTIMENT, "sentiment")
    parsed = BACKENDS[backend]().parse(view, reply_in(backend, sentiment=written))
    assert parsed == {"sentiment": "negative"}


@pytest.mark.parametrize("written", ["3.10", "1e5", "0.50", "-0.0", "220"])
def test_a_number_in_a_text_field_is_kept_as_written(written: str) -> None:
    # A held string may take a number; `3.10` read as Python's float would be `3.1`.
    parsed = BACKENDS["json"]().parse(single(STR, "answer"), f'{{"answer": {written}}}')
    assert parsed == {"answer": written}


def test_a_number_field_gets_a_plain_number() -> None:
    parsed = BACKENDS["json"]().parse(single(FLOAT, "score"), '{"score": 0.50}')
    assert parsed == {"score": 0.5}
    assert type(parsed["score"]) is float


@pytest.mark.parametrize("backend", PARSERS)
def test_literal_choice_written_as_a_bare_number_is_the_choice(backend: str) -> None:
    # A model not held to the schema writes a rating as a number: {"stars": 3}.
    view = single(OneOf(("1", "2", "3", "4", "5")), "stars")
    parsed = BACKENDS[backend]().parse(view, reply_in(backend, stars=3))
    assert parsed == {"stars": "3"}


@pytest.mark.parametrize("backend", PARSERS)
def test_literal_given_another_word_around_a_choice_is_an_error(backend: str) -> None:
    view = single(SENTIMENT, "sentiment")
    assert_reply_error(backend, view, reply_in(backend, sentiment="not negative"), "sentiment")


@pytest.mark.parametrize("backend", PARSERS)
def test_list_given_as_non_list(backend: str) -> None:
    view = single(ListOf(STR), "tags")
    assert_reply_error(backend, view, reply_in(backend, tags="red, green"), "tags")
    assert_reply_error(backend, view, reply_in(backend, tags=7), "tags")


@pytest.mark.parametrize("backend", PARSERS)
def test_list_item_of_wrong_type(backend: str) -> None:
    view = single(ListOf(INT), "counts")
    assert_reply_error(backend, view, reply_in(backend, counts=[1, "two"]), "counts")


@pytest.mark.parametrize("backend", PARSERS)
def test_optional_given_null_is_none(backend: str) -> None:
    assert BACKENDS[backend]().parse(
        single(OptionalOf(INT), "year"), reply_in(backend, year=None)
    ) == {"year": None}
    assert BACKENDS[backend]().parse(
        single(OptionalOf(INT), "year"), reply_in(backend, year=1932)
    ) == {"year": 1932}


@pytest.mark.parametrize("backend", PARSERS)
@pytest.mark.parametrize("written", ["null", "None", ""])
def test_optional_number_given_null_in_quotes_is_none(backend: str, written: str) -> None:
    # Told "a whole number, or null if unknown", a model may quote the null.
    view = single(OptionalOf(INT), "year")
    assert BACKENDS[backend]().parse(view, reply_in(backend, year=written)) == {"year": None}


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "chat",
        ),
        *JSON_PARSERS,
    ],
)
def test_optional_text_given_null_is_none(backend: str) -> None:
    parsed = BACKENDS[backend]().parse(
        single(OptionalOf(STR), "note"), reply_in(backend, note=None)
    )
    assert parsed == {"note": None}


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "chat",
        ),
        *JSON_PARSERS,
    ],
)
def test_optional_literal_given_null_is_none(backend: str) -> None:
    view = single(OptionalOf(SENTIMENT), "sentiment")
    assert BACKENDS[backend]().parse(view, reply_in(backend, sentiment=None)) == {"sentiment": None}


@pytest.mark.parametrize("backend", JSON_PARSERS)
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param('Sure! Here it is: {"answer": "Paris"} Hope that helps.', id="text-around"),
        pytest.param('```json\n{"answer": "Paris"}\n```', id="code-fence"),
        pytest.param('Here:\n```json\n{\n  "answer": "Paris"\n}\n```\n', id="fence-and-text"),
        pytest.param('Using {braces} loosely: {"answer": "Paris"}', id="stray-brace-first"),
        pytest.param('{"answer": "Paris", "extra": 1}', id="extra-key-ignored"),
    ],
)
def test_json_reply_with_text_around_still_parses(backend: str, reply: str) -> None:
    assert BACKENDS[backend]().parse(step(QA), reply) == {"answer": "Paris"}


@pytest.mark.parametrize("backend", JSON_PARSERS)
def test_json_reply_with_raw_line_breaks_inside_a_string_parses(backend: str) -> None:
    # llama-cpp-python's server lets a schema-held reply write them unescaped
    reply = '{"answer": "Paris,\n\tthe capital"}'

    assert BACKENDS[backend]().parse(step(QA), reply) == {"answer": "Paris,\n\tthe capital"}


@pytest.mark.parametrize("backend", JSON_PARSERS)
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("The capital of France is Paris.", id="prose"),
        pytest.param('{"answer": "Paris"', id="truncated"),
        pytest.param('["Paris"]', id="array"),
        pytest.param("", id="empty"),
    ],
)
def test_non_json_reply_is_an_error(backend: str, reply: str) -> None:
    error = assert_reply_error(backend, step(QA), reply)
    assert "JSON" in error.message


@pytest.mark.parametrize("backend", JSON_PARSERS)
def test_json_reply_with_markers_instead_is_an_error(backend: str) -> None:
    assert_reply_error(backend, step(QA), chat_reply(answer="Paris"))


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            "[[ ## reasoning ## ]]\nIt is Paris.\n\n[[ ## completed ## ]]", id="one-missing"
        ),
        pytest.param("[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]", id="first-missing"),
        pytest.param("[[ ## Answer ## ]]\nParis", id="marker-case"),
    ],
)
def test_chat_reply_with_a_marker_missing_is_an_error(reply: str) -> None:
    error = assert_reply_error("chat", step(QA, "chain_of_thought"), reply)
    assert marker("answer") in error.message or marker("reasoning") in error.message


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("The capital of France is Paris.", id="prose"),
        pytest.param('{"reasoning": "r", "answer": "Paris"}', id="json-instead"),
        pytest.param("[[## answer ##]]\nParis", id="marker-spacing"),
        pytest.param("", id="empty"),
    ],
)
def test_chat_reply_with_no_marker_is_an_error(reply: str) -> None:
    error = assert_reply_error("chat", step(QA, "chain_of_thought"), reply)
    assert marker("reasoning") in error.message


def test_chat_reply_with_markers_out_of_order_is_parsed_by_name() -> None:
    # Lenient by design (sections are found by name), so values never land in the wrong field.
    reply = chat_reply(answer="Paris", reasoning="France's capital is Paris.")
    assert ChatBackend().parse(step(QA, "chain_of_thought"), reply) == {
        "reasoning": "France's capital is Paris.",
        "answer": "Paris",
    }


def test_chat_reply_without_completed_marker_or_with_echoed_inputs_still_parses() -> None:
    view = step(QA, "chain_of_thought")
    reply = "[[ ## reasoning ## ]]\nIt is Paris.\n\n[[ ## answer ## ]]\nParis\n"
    assert ChatBackend().parse(view, reply) == {"reasoning": "It is Paris.", "answer": "Paris"}
    echoed = f"{marker('question')}\nWhat is it?\n\n" + chat_reply(reasoning="r", answer="Paris")
    assert ChatBackend().parse(view, echoed)["answer"] == "Paris"


def test_chat_first_of_repeated_markers_wins() -> None:
    reply = chat_reply(answer="Paris") + "\n\n" + chat_reply(answer="Lyon")
    assert ChatBackend().parse(step(QA), reply) == {"answer": "Paris"}


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ('"true"', True), ("false", False)]
)
def test_chat_bool_given_as_text(text: str, value: bool) -> None:
    assert ChatBackend().parse(single(BOOL, "ok"), chat_reply(ok=text)) == {"ok": value}


@pytest.mark.parametrize(("text", "value"), [("3", 3), ('"3"', 3), (" 3 ", 3), ("-12", -12)])
def test_chat_int_given_as_text(text: str, value: int) -> None:
    parsed = ChatBackend().parse(single(INT, "count"), chat_reply(count=text))
    assert parsed == {"count": value}
    assert type(parsed["count"]) is int


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('```json\n["red", "green"]\n```', id="fence"),
        pytest.param('```\n["red", "green"]\n```', id="bare-fence"),
        pytest.param('`["red", "green"]`', id="backticks"),
    ],
)
def test_chat_json_value_in_a_code_fence_parses(text: str) -> None:
    # Models fence JSON out of habit, as the json backend's parser already allows for.
    parsed = ChatBackend().parse(single(ListOf(STR), "tags"), chat_reply(tags=text))
    assert parsed == {"tags": ["red", "green"]}
    count = text.replace('["red", "green"]', "3")
    assert ChatBackend().parse(single(INT, "count"), chat_reply(count=count)) == {"count": 3}


def test_chat_text_field_keeps_its_code_fence() -> None:
    reply = chat_reply(answer="```python\nprint(1)\n```")
    assert ChatBackend().parse(step(QA), reply) == {"answer": "```python\nprint(1)\n```"}


def test_chat_text_fields_keep_their_text_and_drop_surrounding_blank_lines() -> None:
    reply = chat_reply(answer="  \nTwo lines,\nkept as they are.\n\n")
    assert ChatBackend().parse(step(QA), reply) == {"answer": "Two lines,\nkept as they are."}


def test_chat_literal_is_taken_as_text() -> None:
    assert ChatBackend().parse(single(SENTIMENT, "s"), chat_reply(s="negative")) == {
        "s": "negative"
    }


@pytest.mark.parametrize("backend", JSON_PARSERS)
def test_json_strings_for_numbers_and_bools_are_converted(backend: str) -> None:
    view = StepView(
        SignatureSpec(None, (FieldSpec("t"),), (FieldSpec("n", INT), FieldSpec("b", BOOL))),
        "predict",
    )
    assert BACKENDS[backend]().parse(view, '{"n": "3", "b": "true"}') == {"n": 3, "b": True}


# 4. repair() -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["chat", "json"])
@pytest.mark.parametrize("constrained", [False, True])
def test_repair_shows_the_reply_and_the_error(backend: str, constrained: bool) -> None:
    view, inputs = CASES["mixed"]
    lm = fake_lm(constrained)
    backend_ = BACKENDS[backend]()
    request = backend_.lower(view, inputs, lm)
    bad = reply_in(backend, title="x", stars="four")
    with pytest.raises(ReplyError) as caught:
        backend_.parse(view, bad)
    repaired = backend_.repair(view, request, bad, caught.value, lm)
    assert repaired.messages[: len(request.messages)] == request.messages
    assert repaired.messages[len(request.messages) :] == (
        Message("assistant", bad),
        repaired.messages[-1],
    )
    assert len(repaired.messages) == len(request.messages) + 2
    note = repaired.messages[-1]
    assert note.role == "user"
    assert caught.value.message in note.content
    assert (repaired.grammar, repaired.json_schema) == (request.grammar, request.json_schema)
    assert (repaired.temperature, repaired.max_tokens) == (request.temperature, request.max_tokens)
    assert repaired.prompt is None


def completion_repair() -> tuple[StepView, LMRequest, LMRequest, str, ReplyError]:
    view, inputs = CASES["demos"]
    lm = fake_lm()
    backend = CompletionBackend()
    request = backend.lower(view, inputs, lm)
    bad = "The answer is Paris."
    with pytest.raises(ReplyError) as caught:
        backend.parse(view, bad)
    return view, request, backend.repair(view, request, bad, caught.value, lm), bad, caught.value


def test_completion_repair_extends_the_original_prompt() -> None:
    _, request, repaired, bad, error = completion_repair()
    assert request.prompt is not None
    assert repaired.prompt is not None
    assert repaired.prompt.startswith(request.prompt)
    tail = repaired.prompt[len(request.prompt) :]
    assert bad in tail
    assert error.message in tail
    assert repaired.prompt.endswith("<|im_start|>assistant\n")
    assert repaired.json_schema == request.json_schema
    assert repaired.messages[: len(request.messages)] == request.messages


def test_completion_repair_prompt_is_the_whole_conversation_rendered() -> None:
    view, _, repaired, bad, error = completion_repair()
    assert repaired.prompt is not None
    note_text = repaired.prompt.rsplit("<|im_start|>user\n", 1)[1].split("<|im_end|>")[0]
    assert error.message in note_text
    messages = tuple(JsonBackend().messages(view, CASES["demos"][1]))
    follow_up = (Message("assistant", bad), Message("user", note_text))
    assert repaired.prompt == render_prompt(SMOLLM2_TEMPLATE, (*messages, *follow_up))
    assert SMOLLM2_DEFAULT_SYSTEM not in repaired.prompt


# 5. Registry -------------------------------------------------------------------------------------


def test_registry_lists_the_builtin_backends() -> None:
    names = REGISTERED.names()
    assert {"chat", "completion", "json"} <= set(names)
    assert list(names) == sorted(names)
    for name, cls in BACKENDS.items():
        backend = REGISTERED.load(name)()
        assert type(backend) is cls
        assert backend.name == name


def test_registry_unknown_name_names_the_choices() -> None:
    with pytest.raises(UnknownName) as caught:
        REGISTERED.load("jsno")
    assert str(caught.value) == (
        "unknown backend 'jsno'; expected 'chat', 'completion' or 'json'; did you mean 'json'?"
    )


def test_registry_refuses_a_second_backend_of_the_same_name() -> None:
    with pytest.raises(ValueError, match="'chat' is already registered"):
        REGISTERED.register("chat", JsonBackend)
    assert REGISTERED.load("chat") is ChatBackend


def test_registry_takes_a_new_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(REGISTERED, "_targets", dict(REGISTERED._targets))

    class Shouty(JsonBackend):
        name = "shouty"

    REGISTERED.register("shouty", Shouty)
    assert "shouty" in REGISTERED.names()
    assert isinstance(lmc.context(FakeLM(), backend="shouty").backend, Shouty)


@pytest.mark.parametrize("backend", PARSERS)
@pytest.mark.parametrize(
    "value", ["1" * 5000, "[" * 100_000 + "]" * 100_000], ids=["long number", "deep"]
)
def test_a_reply_beyond_the_json_limits_is_an_unusable_reply_not_a_crash(
    backend: str, value: str
) -> None:
    # A hostile server: numbers longer than Python reads, arrays nested past its recursion limit.
    reply = chat_reply(value=value) if backend == "chat" else '{"value": ' + value + "}"

    assert_reply_error(backend, single(ListOf(INT)), reply)
