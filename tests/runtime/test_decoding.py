"""A step's decoding options (`with temperature=..., max_tokens=..., n=...`): sent to the model,
part of what the cache keys on, and with `n` above 1 the step's answer is the most common of `n`
samples."""

from __future__ import annotations

import json

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime.steps import StepFailed, most_common

PROGRAM = """
program P(question: str) -> (answer: str) {
    gen = STEP "question -> answer"(question=question) with OPTIONS
    return answer = gen.answer
}
"""


def program(options: str, step: str = "predict") -> lmc.Program:
    return lmc.loads(PROGRAM.replace("STEP", step).replace("OPTIONS", options))


def test_temperature_and_max_tokens_reach_the_model_and_the_cache_key() -> None:
    fake = FakeLM(['{"answer": "a"}'] * 2)
    program("temperature=0.3, max_tokens=64").run({"question": "q"}, lmc.context(fake, cache=False))
    lmc.loads(PROGRAM.replace("STEP", "predict").replace(" with OPTIONS", "")).run(
        {"question": "q"}, lmc.context(fake, cache=False)
    )

    tuned, plain = (r.to_json() for r in fake.requests)
    assert (tuned["temperature"], tuned["max_tokens"]) == (0.3, 64)
    assert (plain["temperature"], plain["max_tokens"]) == (0.0, 512)
    assert {k: v for k, v in tuned.items() if k not in ("temperature", "max_tokens")} == {
        k: v for k, v in plain.items() if k not in ("temperature", "max_tokens")
    }


def test_a_steps_max_tokens_overrides_the_room_a_held_reply_is_given() -> None:
    # A held chain of thought is given the tokens its bounds need (1,433 here); a step that says
    # how many tokens its reply may take is taken at its word.
    held = FakeLM(['{"reasoning": "r", "answer": "a"}'] * 2, constrains=True)
    for options in ("max_tokens=64", "temperature=0.0"):
        program(options, "chain_of_thought").run({"question": "q"}, lmc.context(held, cache=False))

    said, unsaid = (r.max_tokens for r in held.requests)
    assert said == 64
    assert unsaid > 1000


def test_n_samples_are_separate_draws_and_the_most_common_answer_wins() -> None:
    fake = FakeLM(['{"answer": "Rome"}', '{"answer": "Paris"}', '{"answer": "Paris"}'])

    result = program("temperature=0.7, n=3").run({"question": "q"}, lmc.context(fake, cache=False))

    assert result.answer == "Paris"
    keys = [json.dumps(r.to_json(), sort_keys=True) for r in fake.requests]
    assert len(set(keys)) == 3  # each sample its own cache entry, not the first one three times


def test_a_sample_that_stays_unusable_loses_its_vote_not_the_step() -> None:
    # The second sample's reply and its repair are both unusable; the other two still vote.
    fake = FakeLM(['{"answer": "Paris"}', "garbage", "still garbage", '{"answer": "Paris"}'])

    result = program("temperature=0.7, n=3").run({"question": "q"}, lmc.context(fake, cache=False))

    assert result.answer == "Paris"


def test_a_step_whose_every_sample_stays_unusable_fails() -> None:
    fake = FakeLM(["garbage"] * 4)

    with pytest.raises(StepFailed):
        program("temperature=0.7, n=2").run({"question": "q"}, lmc.context(fake, cache=False))


def test_a_tie_goes_to_the_earliest_sample_and_the_reasoning_stays_with_its_answer() -> None:
    samples = [
        {"reasoning": "because R", "answer": "Rome"},
        {"reasoning": "because P", "answer": "Paris"},
        {"reasoning": "since P", "answer": "Paris"},
        {"reasoning": "as R", "answer": "Rome"},
    ]

    assert most_common(samples) == {"reasoning": "because R", "answer": "Rome"}
    assert most_common(samples[1:]) == {"reasoning": "because P", "answer": "Paris"}


def test_sampling_at_temperature_zero_is_refused_where_it_is_written() -> None:
    with pytest.raises(lmc.ProgramError) as raised:
        program("n=3")

    assert "3 samples at temperature 0 are one answer 3 times" in str(raised.value)
    assert str(raised.value).startswith("<string>:3:")


def test_options_print_and_parse_back() -> None:
    compiled = program("temperature=0.7, max_tokens=200, n=5")

    text = compiled.to_lmp()

    assert "with temperature=0.7, max_tokens=200, n=5" in text
    assert lmc.loads(text).ir == compiled.ir
