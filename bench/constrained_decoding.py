"""What holding a reply to a JSON Schema costs per written token, in-process and on a server.

    .venv/bin/python bench/constrained_decoding.py embedded [--model smollm2|qwen0.5b|qwen1.5b]
    .venv/bin/python bench/constrained_decoding.py served [--model qwen0.5b] [--server llama.cpp]
    .venv/bin/python bench/constrained_decoding.py mask [--model qwen0.5b]

`embedded`: lmc's local client, greedy, on a few chain-of-thought and label prompts: the
grammar checked on the model's top token (what lmc does) against llama-cpp-python's grammar
sampler masking the whole vocabulary first (what it did). Prints ms per written token for each
and whether every reply is the same. `served`: one server (llama-cpp-python's, or llama.cpp's,
which checks the drawn token first: `bench/llama_server.py`), the same chain-of-thought
requests with the schema lmc sends (strings bounded), with it unbounded, and with no schema;
ms per written token for each. `mask`: what one full-vocabulary mask costs (what a
llama-cpp-python server does before every token of a held reply), mid-way through a reasoning
string, for grammars of different shapes: whether any grammar lmc could send instead would be
cheaper. Not part of CI.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import DEFAULT_SERVER
from models import MODELS, model_path
from run import SERVERS, model_server

from lmc.backends.base import LMRequest, Message
from lmc.backends.chat import marker_grammar
from lmc.backends.clients import local
from lmc.backends.clients.gbnf import reply_grammar, schema_gbnf
from lmc.backends.schema import object_schema
from lmc.signatures import FieldSpec
from lmc.types import STR, OneOf

QUESTIONS = [
    "A farmer has 12 cows, buys 7 more, then sells 5. How many cows does he have?",
    "Tom reads 20 pages a day for 6 days. How many pages does he read?",
    "A shirt costs $25 and is 20% off. What does it cost?",
    "Sam has 3 boxes of 8 pencils and gives away 5 pencils. How many are left?",
]
CLAIMS = [
    "The Eiffel Tower is in Berlin.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The Moon is larger than the Earth.",
    "Mount Everest is the highest mountain above sea level.",
]
VERDICT = OneOf(("SUPPORTS", "REFUTES", "NOT ENOUGH INFO"))


def schema(fields: tuple[FieldSpec, ...], bounded: bool = True) -> str:
    return json.dumps(object_schema(fields, bounded=bounded))


REASONED = (FieldSpec("reasoning", STR), FieldSpec("answer", STR))
REQUESTS = [(q, schema(REASONED)) for q in QUESTIONS] + [
    (c, schema((FieldSpec("label", VERDICT),))) for c in CLAIMS
]


def request(text: str, json_schema: str | None) -> LMRequest:
    system = Message("system", "Reply with one JSON object of the fields asked for.")
    return LMRequest(
        messages=(system, Message("user", text)), json_schema=json_schema, max_tokens=200
    )


def embedded(model: str) -> None:
    lm = local.LocalLM(None if model == "smollm2" else model_path(model))
    loaded = local._load(lm.path)

    def masked(call: LMRequest) -> tuple[str, int]:
        grammar = local._llama_grammar(reply_grammar(call))
        options = {"temperature": 0.0, "max_tokens": 200, "stop": None, "seed": 0}
        result, text = lm._generate(loaded, call, {**options, "grammar": grammar})
        return text, int(result["usage"]["completion_tokens"])

    def checked(call: LMRequest) -> tuple[str, int]:
        reply = lm.complete(call)
        return reply.text, reply.completion_tokens

    ways = {"checked": checked, "masked": masked}
    checked(request(*REQUESTS[0]))  # load the model and warm its context
    rows: dict[str, tuple[list[str], int, float]] = {}
    for name, way in ways.items():
        replies, tokens, seconds = [], 0, 0.0
        for text, json_schema in REQUESTS:
            started = time.perf_counter()
            reply, written = way(request(text, json_schema))
            seconds += time.perf_counter() - started
            replies.append(reply)
            tokens += written
        rows[name] = (replies, tokens, seconds)
    for name, (_, tokens, seconds) in rows.items():
        per_token = 1000 * seconds / tokens
        print(f"{model} {name}: {tokens} tokens, {seconds:.1f} s, {per_token:.1f} ms/token")
    same = rows["checked"][0] == rows["masked"][0]
    ratio = rows["masked"][2] / rows["checked"][2]
    print(f"{model}: replies identical: {same}; checked is {ratio:.2f}x as fast")


def post(api_base: str, body: dict[str, Any]) -> dict[str, Any]:
    sent = urllib.request.Request(
        api_base + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(sent, timeout=600) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def served(model: str, server: str) -> None:
    log = Path("/tmp") / f"constrained-decoding-{model}-{server}.log"
    variants = {
        "schema, strings bounded (lmc)": schema(REASONED),
        "schema, strings unbounded": schema(REASONED, bounded=False),
        "no schema": None,
    }
    with model_server(model_path(model), log, server=server) as api_base:
        for name, json_schema in variants.items():
            tokens, seconds = 0, 0.0
            for question in QUESTIONS:
                body: dict[str, Any] = {"model": "bench", "temperature": 0, "max_tokens": 300}
                body["messages"] = [
                    {"role": "system", "content": "Solve it. Reply with JSON: reasoning, answer."},
                    {"role": "user", "content": question},
                ]
                if json_schema is not None:
                    body["response_format"] = {
                        "type": "json_object",
                        "schema": json.loads(json_schema),
                    }
                started = time.perf_counter()
                tokens += post(api_base, body)["usage"]["completion_tokens"]
                seconds += time.perf_counter() - started
            per_token = 1000 * seconds / tokens
            took = f"{tokens} tokens, {seconds:.1f} s, {per_token:.1f} ms/t"
            print(f"{model} on {server}, {name}: {took}")


# The same two fields as flat GBNF: one character class per string, nothing nested.
FLAT = r"""root ::= "{" ws "\"reasoning\"" ws ":" ws str ws "," ws "\"answer\"" ws ":" ws str ws "}"
str ::= "\"" [^"\\\x7F\x00-\x1F]{0,1000} "\""
ws ::= [ \t\n]{0,20}"""
IN_JSON_REASONING = '{"reasoning": "The farmer has 12 cows and'
IN_MARKER_REASONING = "[[ ## reasoning ## ]]\nThe farmer has 12 cows and"


def mask(model: str) -> None:
    import llama_cpp
    import numpy as np

    llama = llama_cpp.Llama(str(model_path(model)), vocab_only=True, verbose=False)
    size = llama.n_vocab()
    grammars = {
        "JSON Schema, strings bounded (lmc's json backend)": (
            schema_gbnf(schema(REASONED)),
            IN_JSON_REASONING,
        ),
        "JSON Schema, strings unbounded": (
            schema_gbnf(schema(REASONED, bounded=False)),
            IN_JSON_REASONING,
        ),
        "flat character classes": (FLAT, IN_JSON_REASONING),
        "lmc's chat markers": (marker_grammar(REASONED), IN_MARKER_REASONING),
    }
    entry = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
    candidates = np.zeros(size, dtype=entry)
    pointer = candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
    for name, (grammar, written) in grammars.items():
        sampler = llama_cpp.llama_sampler_init_grammar(
            llama._model.vocab, grammar.encode(), b"root"
        )
        for token in llama.tokenize(written.encode(), add_bos=False, special=False):
            llama_cpp.llama_sampler_accept(sampler, token)
        best = float("inf")
        for _ in range(7):
            candidates["id"] = np.arange(size)
            candidates["logit"] = 0.0
            array = llama_cpp.llama_token_data_array(pointer, size, -1, False)
            started = time.perf_counter()
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
            best = min(best, time.perf_counter() - started)
        allowed = int(np.isfinite(candidates["logit"]).sum())
        llama_cpp.llama_sampler_free(sampler)
        print(f"{model} {name}: {1000 * best:.1f} ms per mask, {allowed:,} of {size:,} allowed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("where", choices=["embedded", "served", "mask"])
    parser.add_argument("--model", choices=MODELS)
    parser.add_argument("--server", choices=tuple(SERVERS), default=DEFAULT_SERVER)
    args = parser.parse_args()
    if args.where == "embedded":
        embedded(args.model or "smollm2")
    elif args.where == "served":
        served(args.model or "qwen0.5b", args.server)
    else:
        mask(args.model or "qwen0.5b")


if __name__ == "__main__":
    main()
