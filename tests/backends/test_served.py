"""The direct client of a served model (`openai/NAME` with an api base): what it sends, on which
connection, and that it is the one such a model string gets. How it retries and fails is in
test_faults.py, which runs on it and on the litellm client alike."""

from __future__ import annotations

import threading

import pytest
from faultserver import FaultServer, reply

import lmc
from lmc.backends.base import LMRequest, Message
from lmc.backends.clients.hosted import HostedLM
from lmc.backends.clients.served import ServedLM
from lmc.errors import InputError

REQUEST = LMRequest(messages=(Message("user", "What is the capital of France?"),))


def test_an_openai_model_with_an_api_base_is_served_and_any_other_goes_to_litellm() -> None:
    assert isinstance(lmc.LM("openai/x", api_base="http://127.0.0.1:8000/v1"), ServedLM)
    assert isinstance(lmc.LM("openai/x"), HostedLM)
    assert isinstance(lmc.LM("ollama/x", api_base="http://127.0.0.1:11434"), HostedLM)


def test_its_cache_identity_is_what_the_litellm_client_had() -> None:
    # Cached replies of a served model stay valid: the key is the same as before.
    base = "https://user:secret@host:8000/v1/?key=abc"
    served, hosted = ServedLM("openai/x", base), HostedLM("openai/x", base)
    assert served.identity == hosted.identity == "litellm:openai/x@https://host:8000/v1"
    assert served.enforces_schema
    assert hosted.enforces_schema
    assert served.described == hosted.described == "model openai/x at https://host:8000/v1"


def test_served_name_is_the_same_model_and_needs_an_address() -> None:
    lm = lmc.LM("served:x", api_base="http://127.0.0.1:8000/v1")
    assert lm.identity == lmc.LM("openai/x", api_base="http://127.0.0.1:8000/v1").identity
    with pytest.raises(InputError, match="needs the address of its server: --api-base"):
        lmc.LM("served:x")


def test_it_sends_what_litellm_sent(fault_server: FaultServer) -> None:
    fault_server.otherwise = reply('{"answer": "Paris"}')
    lm = ServedLM("openai/org/x", fault_server.url)
    schema = '{"type": "object", "properties": {"answer": {"type": "string"}}}'
    request = LMRequest(
        messages=REQUEST.messages, json_schema=schema, temperature=0.5, max_tokens=9, stop=("\n",)
    )
    response = lm.complete(request)
    assert (response.text, response.prompt_tokens, response.completion_tokens) == (
        '{"answer": "Paris"}',
        7,
        5,
    )
    (sent,) = fault_server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "org/x",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0.5,
        "max_tokens": 9,
        "stop": ["\n"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "outputs",
                "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
            },
        },
    }
    lm.complete(LMRequest(prompt="Q: capital of France?\nA:"))
    assert fault_server.requests[1].path == "/v1/completions"
    assert fault_server.requests[1].body["prompt"] == "Q: capital of France?\nA:"


def test_the_api_key_comes_from_the_environment_else_a_dummy(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lm = ServedLM("openai/x", fault_server.url)
    lm.complete(REQUEST)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-env")
    lm.complete(REQUEST)
    keys = [r.headers["authorization"] for r in fault_server.requests]
    assert keys == ["Bearer sk-local", "Bearer sk-from-the-env"]
    assert "sk-from-the-env" not in repr(vars(lm)) + lm.identity + lm.described


def test_a_thread_keeps_its_connection_alive_and_each_thread_has_its_own(
    fault_server: FaultServer,
) -> None:
    lm = ServedLM("openai/x", fault_server.url)
    for _ in range(3):
        lm.complete(REQUEST)
    worker = threading.Thread(target=lm.complete, args=(REQUEST,))
    worker.start()
    worker.join()
    peers = [r.peer for r in fault_server.requests]
    assert peers[0] == peers[1] == peers[2] != peers[3]


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(
    fault_server: FaultServer,
) -> None:
    lm = ServedLM("openai/x", fault_server.url, retries=0)
    lm.complete(REQUEST)
    fault_server.hang_up()
    assert lm.complete(REQUEST).text == '{"answer": "Paris"}'  # with retries=0: not a failure
    assert fault_server.calls == 2
    assert fault_server.requests[0].peer != fault_server.requests[1].peer
