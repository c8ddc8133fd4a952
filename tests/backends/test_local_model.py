"""On the real embedded model (SmolLM2-135M): typed outputs come back valid, every time.

These tests make real LM calls (about twenty in all, a few seconds each at most) and are marked
`real_model`; `pytest -m "not real_model"` skips them.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

import lmc
from lmc.backends.base import LMRequest, Message
from lmc.backends.clients import local as local_client
from lmc.backends.clients.gbnf import reply_grammar
from lmc.backends.clients.grammar_check import GrammarCheck, control_bias
from lmc.backends.clients.local import LocalLM, PromptTooLong, default_model_path
from lmc.backends.schema import MAX_PLAIN_REASONING, object_schema
from lmc.runtime.trace import read_trace
from lmc.signatures import FieldSpec
from lmc.types import INT, STR

pytestmark = pytest.mark.real_model
EXAMPLE = Path(__file__).parents[2] / "examples" / "qa" / "program.lmp"

REVIEWS = [
    "The food was great but the service was slow.",
    "Absolutely terrible. I will never come back.",
    "Best pizza in town, friendly staff, fair prices!",
    "Oh great, another hour waiting for cold soup. Wonderful.",
    "It was fine. Nothing special, nothing bad.",
    "The hotel room was spotless and the view was amazing.",
    "My package arrived broken and support ignored me.",
    "Decent coffee, but the music was far too loud.",
    "I loved the concert; the band played for three hours.",
    "The app crashes every time I open the camera.",
]


class DescribeReview(lmc.Signature):
    """Read the customer review and describe it."""

    review: str = lmc.InputField()
    sentiment: Literal["positive", "negative", "mixed"] = lmc.OutputField()
    sarcastic: bool = lmc.OutputField()
    stars: int = lmc.OutputField(desc="From 1 to 5.")
    confidence: float = lmc.OutputField(desc="From 0 to 1.")
    keywords: list[str] = lmc.OutputField(desc="A few words from the review.")


def assert_valid(prediction: lmc.Prediction) -> None:
    assert prediction.sentiment in ("positive", "negative", "mixed")
    assert isinstance(prediction.sarcastic, bool)
    assert isinstance(prediction.stars, int)
    assert not isinstance(prediction.stars, bool)
    assert isinstance(prediction.confidence, float)
    assert isinstance(prediction.keywords, list)
    assert all(isinstance(k, str) for k in prediction.keywords)


def test_typed_outputs_are_valid_in_ten_of_ten_runs() -> None:
    describe = lmc.Predict(DescribeReview)
    with lmc.configure("local", cache=False) as context:
        for review in REVIEWS:
            assert_valid(describe(review=review))
    total = context.stats.total()
    assert total.calls == len(REVIEWS)
    assert total.repairs == 0
    assert total.failures == 0


def test_the_second_call_of_a_step_reuses_the_prompt_prefix_the_first_left() -> None:
    answer = lmc.Predict("question -> answer")
    with lmc.configure("local", cache=False) as context:
        answer(question="What is the capital of France?")
        answer(question="Who wrote Hamlet?")
    second = context.history[-1]
    # The step's instruction and field descriptions, not evaluated again; the question is.
    assert 0 < second["reused_prompt_tokens"] < second["prompt_tokens"]
    total = context.stats.total()
    assert total.reuse_unknown == 0  # the embedded model always says
    assert total.evaluated_prompt_tokens < total.model_prompt_tokens


def test_a_prompt_longer_than_the_model_can_hold_is_one_line_not_a_llama_error() -> None:
    # No token is evaluated: llama-cpp-python refuses the prompt before reading it, in words
    # lmc must recognise (the context first grows to the model's trained 8,192).
    answer = lmc.Predict("question -> answer")
    with lmc.configure("local", cache=False), pytest.raises(PromptTooLong) as failed:
        answer(question=" ".join(["word"] * 9000))
    assert re.fullmatch(
        r"step 'step': model gguf:SmolLM2-135M-Instruct\.Q4_1\.gguf:\w+: the prompt is \d+ "
        r"tokens, and with the 512 its reply may take it does not fit the 8192 tokens of "
        r"context the model can have",
        str(failed.value),
    )


def test_the_chat_backend_is_held_to_its_field_markers_too() -> None:
    describe = lmc.Predict(DescribeReview)
    with lmc.configure("local", backend="chat", cache=False) as context:
        for review in REVIEWS[:3]:
            assert_valid(describe(review=review))
    assert context.stats.total().failures == 0


def test_lmc_run_answers_the_example_on_a_fresh_cache(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "lmc"),
            "run",
            str(EXAMPLE),
            "--input",
            "question=What is the capital of France?",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "LMC_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('{"answer": ')
    assert (tmp_path / "lm-cache.sqlite").exists()


# The served path (called directly, no litellm), against the same model served on this machine -


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served_model() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--model_alias",
            "smol",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_served_model_answers(served_model: str) -> None:
    program = lmc.load(EXAMPLE)
    with lmc.configure("openai/smol", api_base=served_model, cache=False) as context:
        prediction = program(question="What is the capital of France?")
        assert isinstance(prediction.answer, str)
        assert prediction.answer
        assert_valid(lmc.Predict(DescribeReview)(review=REVIEWS[0]))
    assert context.stats.total().failures == 0


def test_the_multi_hop_rag_example_runs_end_to_end() -> None:
    program = lmc.load(Path(__file__).parents[2] / "examples" / "rag" / "program.lmp")
    question = "Which country is the Eiffel Tower in?"
    with lmc.configure("local", cache=False) as context:
        prediction = program(question=question)
    assert isinstance(prediction.answer, str)
    assert context.stats.retrievals == 3  # the first search, then one per hop
    total = context.stats.total()
    assert total.calls == 3
    assert total.failures == 0


# The example agent: its tool calls are held to the tools' names and argument types -----------

AGENT = Path(__file__).parents[2] / "examples" / "agent"


def run_the_agent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *model: str, **options: str
) -> None:
    monkeypatch.syspath_prepend(str(AGENT))  # its tools, as `lmc run` finds them beside the file
    source = (AGENT / "program.lmp").read_text().replace("max_iters=4", "max_iters=2")
    program = lmc.loads(source)
    trace = tmp_path / "trace.jsonl"
    with lmc.configure(*model, cache=False, trace=str(trace), **options) as context:
        prediction = program(question="Which country is the Eiffel Tower in?")
    assert isinstance(prediction.answer, str)
    total = context.stats.total()
    assert (total.failures, total.repairs) == (0, 0)  # every call usable as first written
    assert 2 <= total.calls <= 3  # one or two iterations, then the answer
    (trajectory,) = [line for line in read_trace(trace) if line.get("kind") == "trajectory"]
    for turn in trajectory["turns"]:
        assert turn["tool"] in ("Search", "Calculate", "finish")
        expected = {"Search": {"query"}, "Calculate": {"expression"}, "finish": set()}
        assert set(turn["args"]) == expected[turn["tool"]]
        assert all(isinstance(value, str) for value in turn["args"].values())


def test_the_example_agent_runs_on_the_embedded_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run_the_agent(monkeypatch, tmp_path, "local")


def test_the_example_agent_runs_on_a_served_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served_model: str
) -> None:
    run_the_agent(monkeypatch, tmp_path, "openai/smol", api_base=served_model)


@pytest.mark.parametrize(
    "reasoning_first", [0, MAX_PLAIN_REASONING], ids=["json", "reasoning-first"]
)
def test_greedy_replies_checked_on_the_top_token_are_those_a_masked_vocabulary_gives(
    reasoning_first: int,
) -> None:
    # The embedded model's greedy calls check the grammar on the model's top token only
    # (backends/clients/grammar_check.py); llama-cpp-python's grammar sampler masks every token
    # first. The replies must be the same, token for token.
    fields = (FieldSpec("answer", INT),)
    if not reasoning_first:
        fields = (FieldSpec("reasoning", STR), *fields)
    schema = json.dumps(object_schema(fields, bounded=True))
    lm = LocalLM()
    loaded = local_client._load(lm.path)
    for question in ("Tom has 3 apples and buys 4 more. How many now?", "What is 6 times 7?"):
        request = LMRequest(
            messages=(Message("system", "Reason, then reply in JSON."), Message("user", question)),
            json_schema=schema,
            reasoning_first=reasoning_first,
            max_tokens=80,
        )
        masked_options = {
            **{"temperature": 0.0, "max_tokens": 80, "stop": None, "seed": 0},
            "grammar": local_client._llama_grammar(reply_grammar(request)),
        }
        checked = lm.complete(request).text
        masked = lm._generate(loaded, request, masked_options)[1]
        assert checked == masked
        assert checked.startswith("{") == (not reasoning_first)


ANSWER_SCHEMA = json.dumps(object_schema((FieldSpec("answer", STR),), bounded=True))


def answer_request(system: str, question: str, **options: int) -> LMRequest:
    """A call for `{"answer": ...}`, held to its bounded schema."""
    messages = (Message("system", system), Message("user", question))
    return LMRequest(messages=messages, json_schema=ANSWER_SCHEMA, **options)


def test_a_string_that_loops_is_closed_and_the_reply_ends() -> None:
    # SmolLM2 writes "1, 2, 1, 2, ..." into the answer until the field's bound runs out; the
    # string is closed after eight repeats, and the object with it.
    question = "Count the pattern out loud, many times: 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2"
    request = answer_request('Reply with a JSON object: "answer".', question, max_tokens=600)

    response = LocalLM().complete(request)

    answer = json.loads(response.text)["answer"]
    assert answer.startswith("1, 2, 1, 2, 1, 2, 1, 2")  # closed in its loop, not at its bound
    assert len(answer) < 100
    assert response.loops_closed == 1


def test_reasoning_that_loops_is_closed_and_the_reply_goes_on_to_its_object() -> None:
    # A loop in plain-text reasoning is ended by a new line and the object's `{`.
    question = "List the numbers 100, 100, 100, 100, 100, 100, 100, 100 and add them."
    request = answer_request(
        'Reason in plain text, then reply with a JSON object: "answer".',
        question,
        reasoning_first=MAX_PLAIN_REASONING,
        max_tokens=1433,
    )

    response = LocalLM().complete(request)

    reasoning, brace, rest = response.text.partition("\n{")
    assert reasoning.endswith("100, 100, 100, 100,")
    answer = json.loads(brace + rest)["answer"]
    assert isinstance(answer, str | int | float)  # text, or a number the parser reads as text
    assert response.loops_closed == 1
    assert response.completion_tokens < 200


def test_a_sampled_held_reply_is_kept_from_control_tokens_but_may_end() -> None:
    # Sampling, llama-cpp-python's grammar sampler would take `<|im_start|>` as its text.
    llama = local_client._load(default_model_path()).llama
    refused = control_bias(llama)
    (start,) = llama.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert refused[start] == float("-inf")
    assert llama.token_eos() not in refused
    request = answer_request("Reply with a JSON object.", "What is 2 + 2?")
    reply = LocalLM().complete(replace(request, temperature=0.7))
    assert "answer" in json.loads(reply.text)


def test_each_sample_of_a_step_is_a_draw_of_its_own_and_the_same_every_run() -> None:
    # A step sampled n times (an ensemble's vote) asks for samples 0 to n-1 of one request.
    request = answer_request("Reply with a JSON object.", "Write a short poem about rain.")
    first, second = (replace(request, temperature=1.0, max_tokens=40, sample=n) for n in (0, 1))
    model = LocalLM()

    assert model.complete(first).text != model.complete(second).text
    assert model.complete(second).text == model.complete(second).text


def test_held_reasoning_takes_braces_in_a_line_and_the_object_on_a_line_of_its_own() -> None:
    # Qwen writes LaTeX (`\\frac{1}{3}`); its object comes on a line of its own. A run of blank
    # lines, or a control token such as `<|im_start|>` (which llama.cpp's grammar reads as text,
    # and the reply shows as nothing), is not reasoning.
    request = LMRequest(json_schema=ANSWER_SCHEMA, reasoning_first=MAX_PLAIN_REASONING)
    grammar = reply_grammar(request)
    assert grammar is not None
    llama = local_client._load(default_model_path()).llama

    def allows(text: str, then: str) -> bool:
        check = GrammarCheck(llama, grammar, close_loops=True, reasoning_first=MAX_PLAIN_REASONING)
        try:
            for token in llama.tokenize(text.encode(), add_bos=False, special=False):
                check._api.llama_sampler_accept(check._sampler, token)
            (token,) = llama.tokenize(then.encode(), add_bos=False, special=True)
            return check._allows(token, 0.0)
        finally:
            check.close()

    assert allows("Half of 6 is \\frac", "{")  # a brace inside a line is reasoning
    assert allows("So it is 3.\n", "{")  # the object, on a line of its own
    assert allows("So it is 3.\n\n", "{")
    assert not allows("So it is 3.\n\n", "\n")  # at most one blank line in a row
    assert not allows("So it is 3.\n", "<|im_start|>")
    # In the object: a number where text is (the parser reads it as text), no raw new line
    # inside a string.
    assert allows('So it is 3.\n{"answer": ', "3")
    assert not allows('So it is 3.\n{"answer": "3', "\n")
    assert allows('So it is 3.\n```json\n{"answer": "3"}\n', "```")  # the fence closed
