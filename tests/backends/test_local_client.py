"""The local client: its identity (what the cache keys on for a model file), and how it calls
llama-cpp-python's model: what it reports reused, its grammars, its context and threads."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import llama_cpp
import numpy as np
import pytest
from llama_cpp.llama_grammar import LlamaGrammar

import lmc
from lmc.backends.base import LMCallFailed, LMRequest, Message
from lmc.backends.clients import gbnf, local
from lmc.backends.clients.grammar_check import repeating
from lmc.errors import RunError


def test_a_model_file_is_hashed_once_and_remembered_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF, not really a model")
    first = local.LocalLM(model).identity
    assert first == f"gguf:tiny.gguf:{hashlib.sha256(b'GGUF, not really a model').hexdigest()[:16]}"

    local._file_identity.cache_clear()

    def no_hashing(*args: object) -> object:
        raise AssertionError("hashed again")

    monkeypatch.setattr(local.hashlib, "sha256", no_hashing)
    assert local.LocalLM(model).identity == first


def test_a_changed_model_file_gets_a_new_identity(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF one")
    before = local.LocalLM(model).identity
    model.write_bytes(b"GGUF two, longer")
    assert local.LocalLM(model).identity != before


def test_the_embedded_model_is_found_in_its_package() -> None:
    path = local.default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


# Calls, on a stand-in for llama-cpp-python's model -----------------------------------------------


class FakeLlama:
    """What `LocalLM` uses of llama-cpp-python's `Llama`, a word a token: it keeps the tokens of
    its last prompt and reply in `input_ids[:n_tokens]`, and refuses a prompt longer than its
    context in llama-cpp-python's words."""

    vocabulary: ClassVar[dict[str, int]] = {}

    def __init__(self, context: int, trained: int):
        self.context = context
        self.metadata = {"general.architecture": "fake", "fake.context_length": str(trained)}
        self.input_ids = np.zeros(context, dtype=np.intc)
        self.n_tokens = 0
        self.grammars: list[object] = []
        self.processors: list[object] = []
        self.closed = False

    def n_ctx(self) -> int:
        return self.context

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [self.vocabulary.setdefault(w, len(self.vocabulary)) for w in text.decode().split()]

    def create_chat_completion(self, messages: list[dict[str, str]], **options: Any) -> Any:
        rendered = " ".join(f"{m['role']}: {m['content']}" for m in messages) + " assistant:"
        completion = self.create_completion(rendered, **options)
        text = completion["choices"][0].pop("text")
        completion["choices"][0]["message"] = {"role": "assistant", "content": text}
        return completion

    def create_completion(self, prompt: str, **options: Any) -> Any:
        tokens = self.tokenize(prompt.encode()) + self.tokenize(b"ok")
        prompt_tokens = len(tokens) - 1
        if prompt_tokens >= self.context:
            raise ValueError(
                f"Requested tokens ({prompt_tokens}) exceed context window of {self.context}"
            )
        self.grammars.append(options.get("grammar"))
        self.processors.append(options.get("logits_processor"))
        self.input_ids[: len(tokens)] = tokens
        self.n_tokens = len(tokens)
        return {
            "choices": [{"text": '{"answer": "ok"}'}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1},
        }

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[FakeLlama]:
    """Every model `LocalLM` opens, in order, each a `FakeLlama` trained for 8,192 tokens."""
    models: list[FakeLlama] = []

    def open_llama(path: Path, context: int) -> FakeLlama:
        models.append(FakeLlama(context, trained=8192))
        return models[-1]

    monkeypatch.setattr(local, "_open_llama", open_llama)
    monkeypatch.setattr(local, "_LOADED", {})
    monkeypatch.setattr(local, "control_bias", lambda llama: {})  # a fake has no vocabulary
    return models


def fake_model(tmp_path: Path) -> local.LocalLM:
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF, a stand-in")
    return local.LocalLM(model)


def asking(question: str, *, schema: str | None = None, max_tokens: int = 16) -> LMRequest:
    system = Message("system", "Answer the question in one word, as a JSON object.")
    return LMRequest(
        messages=(system, Message("user", f"question: {question}")),
        json_schema=schema,
        max_tokens=max_tokens,
    )


def test_a_second_call_of_a_step_reports_the_prompt_it_reused_from_the_first(
    tmp_path: Path, opened: list[FakeLlama]
) -> None:
    lm = fake_model(tmp_path)
    first = lm.complete(asking("Who wrote Hamlet?"))
    second = lm.complete(asking("Where is Paris?"))
    assert first.reused_prompt_tokens == 0  # nothing held yet
    # The instruction and the input's name come first in both prompts: "system:", the 10 words
    # of the instruction, "user:", "question:".
    assert second.reused_prompt_tokens == 13
    assert second.prompt_tokens == 17  # and "Where is Paris?", "assistant:"
    again = lm.complete(asking("Where is Paris?"))
    # All of it held; llama-cpp-python evaluates the last prompt token again for its logits.
    assert again.reused_prompt_tokens == again.prompt_tokens - 1
    assert len(opened) == 1  # loaded once


def test_two_calls_with_the_same_schema_make_its_grammar_once(
    tmp_path: Path, opened: list[FakeLlama], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []
    make = gbnf._json_schema_to_gbnf

    def counted(schema: dict[str, Any]) -> str:
        made.append(schema)
        return make(schema)

    monkeypatch.setattr(gbnf, "_json_schema_to_gbnf", counted)
    gbnf.schema_gbnf.cache_clear()
    schema = '{"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}'
    lm = fake_model(tmp_path)
    lm.complete(asking("Is Paris in France?", schema=schema))
    lm.complete(replace(asking("Is Rome in Spain?", schema=schema), temperature=0.7))
    assert made == [json.loads(schema)]


@pytest.mark.parametrize("choice", ['say "hi"', "a\\b", "\U0001f600", "café", "plain"])
def test_a_literal_choice_is_a_grammar_literal_of_its_json_text(choice: str) -> None:
    # llama-cpp-python's converter left `\` unescaped (a quote in a choice ended the literal
    # early) and wrote an emoji as two surrogate escapes, which no token matches.
    schema = {"type": "object", "properties": {"a": {"enum": [choice]}}, "required": ["a"]}
    grammar = gbnf.schema_gbnf(json.dumps(schema))

    rule = next(line for line in grammar.splitlines() if line.startswith("a ::= "))
    literal = rule.removeprefix("a ::= ")
    # A GBNF literal escapes `\`, `"` and line breaks as JSON does, and holds the rest as it is.
    assert json.loads(literal) == json.dumps(choice, ensure_ascii=False)
    assert "\\u" not in literal


def test_greedy_calls_check_the_grammar_on_the_top_token_and_sampling_masks_the_vocabulary(
    tmp_path: Path, opened: list[FakeLlama]
) -> None:
    schema = '{"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}'
    lm = fake_model(tmp_path)
    lm.complete(asking("Is Paris in France?", schema=schema))
    lm.complete(replace(asking("Is Rome in Spain?", schema=schema), temperature=0.7))
    lm.complete(asking("Is Oslo in Norway?"))
    model = opened[0]
    # Greedy: a logits processor checks the top token; no grammar sampler masks every token.
    assert [model.grammars[0], model.processors[0] is not None] == [None, True]
    # Sampling: llama-cpp-python's grammar sampler, before the draw.
    assert [type(model.grammars[1]), model.processors[1]] == [LlamaGrammar, None]
    assert [model.grammars[2], model.processors[2]] == [None, None]  # nothing to hold to


def test_a_prompt_longer_than_the_context_grows_it_to_fit(
    tmp_path: Path, opened: list[FakeLlama]
) -> None:
    lm = fake_model(tmp_path)
    lm.complete(asking("short"))
    long = " ".join(f"w{i}" for i in range(5000))
    reply = lm.complete(asking(long))
    assert [m.context for m in opened] == [local.STARTING_CONTEXT, 8192]
    assert opened[0].closed  # one KV cache at a time
    assert reply.text == '{"answer": "ok"}'
    assert reply.reused_prompt_tokens == 0  # a new context held nothing


def test_a_prompt_the_count_before_the_call_missed_grows_the_context_on_a_second_try(
    tmp_path: Path, opened: list[FakeLlama], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local._Loaded, "make_room", lambda self, request: None)
    reply = fake_model(tmp_path).complete(asking(" ".join(f"w{i}" for i in range(5000))))
    assert [m.context for m in opened] == [local.STARTING_CONTEXT, 8192]
    assert reply.text == '{"answer": "ok"}'


def test_a_prompt_longer_than_the_model_can_hold_is_one_line_naming_step_and_counts(
    tmp_path: Path, opened: list[FakeLlama]
) -> None:
    answer = lmc.Predict("question -> answer")
    long = " ".join(f"w{i}" for i in range(9000))
    with (
        lmc.configure(fake_model(tmp_path), cache=False),
        pytest.raises(local.PromptTooLong) as failed,
    ):
        answer(question=long)
    message = str(failed.value)
    assert re.fullmatch(
        r"step '\w+': model gguf:fake\.gguf:\w+: the prompt is \d{4} tokens, and with the \d+ "
        r"its reply may take it does not fit the 8192 tokens of context the model can have",
        message,
    ), message
    assert isinstance(failed.value, RunError)


class NoSystemLlama(FakeLlama):
    """A model whose chat template refuses a system message, as Gemma's does, in
    llama-cpp-python's words (its `raise_exception` raises a ValueError)."""

    def create_chat_completion(self, messages: list[dict[str, str]], **options: Any) -> Any:
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        self.seen = messages
        return super().create_chat_completion(messages, **options)


def test_a_model_whose_template_refuses_a_system_message_reads_it_in_the_first_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models: list[NoSystemLlama] = []

    def open_llama(path: Path, context: int) -> NoSystemLlama:
        models.append(NoSystemLlama(context, trained=8192))
        return models[-1]

    monkeypatch.setattr(local, "_open_llama", open_llama)
    monkeypatch.setattr(local, "_LOADED", {})
    reply = fake_model(tmp_path).complete(asking("Who wrote Hamlet?"))
    assert reply.text == '{"answer": "ok"}'
    assert models[0].seen == [
        {
            "role": "user",
            "content": "Answer the question in one word, as a JSON object.\n\n"
            "question: Who wrote Hamlet?",
        }
    ]


class RefusingLlama(FakeLlama):
    def create_chat_completion(self, messages: list[dict[str, str]], **options: Any) -> Any:
        raise ValueError("Conversation roles must alternate user/assistant/user/assistant/...")


def test_a_template_that_refuses_the_messages_however_given_fails_the_call_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_open_llama", lambda path, context: RefusingLlama(context, 8192))
    monkeypatch.setattr(local, "_LOADED", {})
    with pytest.raises(LMCallFailed, match="its chat template refused the messages: Conversation"):
        fake_model(tmp_path).complete(asking("Who wrote Hamlet?"))


def test_the_model_runs_a_thread_per_core_it_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert local.available_cores() == 3
    made: dict[str, Any] = {}
    monkeypatch.setattr(llama_cpp, "Llama", lambda **options: made.update(options))
    local._open_llama(Path("model.gguf"), 4096)
    assert (made["n_threads"], made["n_threads_batch"], made["n_ctx"]) == (3, 3, 4096)


HUNDRED_PLUS = [16, 15, 15, 489, 220]  # "100 + ", a digit a token, as small models write it


@pytest.mark.parametrize(
    ("reply", "looping"),
    [
        ([7] * 64, True),  # "0" written over and over
        ([1, 2, 3, 4, 5, 6, 7] * 10, True),  # one clause again and again
        ([9] + list(range(16)) * 8, True),  # the longest span a loop may have, eight times
        ([7] * 63, False),  # not yet long enough to tell
        ([9] + list(range(16)) * 7, False),  # a long span needs eight repeats
        (list(range(17)) * 3, True),  # a sentence said three times running
        ([9] + list(range(128)) * 3, True),  # the longest such span
        (list(range(17)) * 2 + list(range(16)), False),  # not yet three times
        (list(range(129)) * 3, False),  # a span longer than a loop is taken to be
        (HUNDRED_PLUS * 12, False),  # a sum of twelve equal terms is arithmetic, not a loop
        ([99] * 40 + list(range(16)) * 3 + list(range(8)), False),  # it moved on
        (list(range(100)), False),
    ],
)
def test_a_reply_is_looping_when_it_ends_in_one_short_span_said_over_and_over(
    reply: list[int], looping: bool
) -> None:
    assert repeating(reply) is looping
