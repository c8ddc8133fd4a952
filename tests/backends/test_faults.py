"""A hosted or served model that misbehaves: which failures are retried, how long lmc waits (its
backoff, and the server's `Retry-After`, every time), and the one line a failed call ends in.

The server is real (tests/faultserver.py, on 127.0.0.1); time is fake unless a test measures
the wait itself, so nothing here sleeps for long. Each test runs on both clients: the direct one
(`ServedLM`, what `openai/NAME` with an api_base gets) and the litellm one (`HostedLM`, any other
provider), which share their retries and errors.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    body,
    completion,
    drop,
    hang,
    no_choices,
    payload,
    rate_limited,
    reply,
    status,
)

import lmc
from lmc.backends.base import LMCallFailed, LMRequest, Message
from lmc.backends.clients.hosted import HostedLM, HostedLMError, checked_api_base
from lmc.backends.clients.remote import RemoteLM
from lmc.backends.clients.retry import Backoff, retried_status, retry_after_seconds
from lmc.backends.clients.served import ServedLM
from lmc.errors import InputError

REQUEST = LMRequest(messages=(Message("user", "What is the capital of France?"),))
SCHEMA = '{"type": "object", "properties": {"answer": {"type": "string"}}}'


class FakeTime:
    """A clock that moves only when slept on; the waits it was asked for, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


CLIENTS: dict[str, type[RemoteLM]] = {"served": ServedLM, "litellm": HostedLM}
ON = {"client": CLIENTS["served"]}  # the client `client()` makes, set for each test


@pytest.fixture(autouse=True, params=list(CLIENTS))
def _on_each_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ON, "client", CLIENTS[request.param])


def client(
    server: FaultServer,
    fake_time: FakeTime | None = None,
    *,
    retries: int = 3,
    timeout_s: float = 5.0,
    jitter: float = 1.0,
    **backoff: float,
) -> RemoteLM:
    """A fresh client (as the first call of a process makes) on `server`; `jitter` is what the
    random draw returns, so waits are the most full jitter allows."""
    timing = (
        Backoff(sleep=fake_time.sleep, clock=fake_time.clock, random=lambda: jitter, **backoff)
        if fake_time is not None
        else Backoff(random=lambda: jitter, **backoff)
    )
    return ON["client"](
        "openai/x", server.url, retries=retries, timeout_s=timeout_s, backoff=timing
    )


def where(server: FaultServer) -> str:
    return f"model openai/x at http://127.0.0.1:{server.port}/v1"


# Retried: the first call of a process too, with Retry-After honoured ------------------------------


def test_the_first_call_is_retried_after_a_429_and_waits_as_long_as_retry_after_says(
    fault_server: FaultServer,
) -> None:
    # A real wait, measured at the server: the second request came at least 1 s after the first.
    fault_server.script(rate_limited(retry_after=1), reply('{"answer": "Paris"}'))
    lm = client(fault_server, jitter=0.0)
    lm.complete(LMRequest(messages=REQUEST.messages, json_schema=SCHEMA))  # probing its format
    assert fault_server.calls == 2
    assert fault_server.gaps()[0] >= 1.0


def test_a_500_then_a_reply_is_one_successful_call(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(status(500), reply("Paris"))
    response = client(fault_server, fake_time, base_s=0.5).complete(REQUEST)
    assert response.text == "Paris"
    assert fault_server.calls == 2
    assert fake_time.waits == [0.5]  # the first retry's backoff: at most base_s


def test_waits_grow_exponentially_with_full_jitter_up_to_the_cap(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(*[status(503)] * 5, reply("Paris"))
    lm = client(fault_server, fake_time, retries=5, base_s=1.0, max_wait_s=6.0)
    assert lm.complete(REQUEST).text == "Paris"
    assert fake_time.waits == [1.0, 2.0, 4.0, 6.0, 6.0]


def test_jitter_draws_a_wait_between_zero_and_the_backoff() -> None:
    draws = iter([0.0, 0.25, 0.999])
    backoff = Backoff(base_s=2.0, random=lambda: next(draws))
    assert [backoff.delay(3, None, 0.0) for _ in range(3)] == [0.0, 2.0, pytest.approx(7.992)]


def test_retry_after_is_honoured_on_every_retry_and_for_any_retried_status(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(
        rate_limited(retry_after=3),
        status(503, headers={"Retry-After": "2"}),
        status(500, headers={"retry-after-ms": "1500"}),
        reply("Paris"),
    )
    lm = client(fault_server, fake_time, base_s=0.1, jitter=0.0)
    assert lm.complete(REQUEST).text == "Paris"
    assert fake_time.waits == [3.0, 2.0, 1.5]


def test_a_wait_the_server_asked_for_holds_the_next_call_as_well(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(rate_limited(retry_after=4), reply("one"))
    lm = client(fault_server, fake_time, jitter=0.0)
    lm.complete(REQUEST)
    fake_time.now -= 3  # the next call starts 1 s into the 4 s wait (as another thread would)
    lm.complete(REQUEST)
    assert fake_time.waits == [4.0, 3.0]


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504, 599])
def test_these_statuses_are_retried(
    fault_server: FaultServer, fake_time: FakeTime, code: int
) -> None:
    fault_server.script(status(code), reply("Paris"))
    assert client(fault_server, fake_time).complete(REQUEST).text == "Paris"
    assert fault_server.calls == 2


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_not_retried(
    fault_server: FaultServer, fake_time: FakeTime, code: int
) -> None:
    fault_server.script(status(code, "no such thing"))
    with pytest.raises(HostedLMError, match=rf"server said {code} .*: no such thing$"):
        client(fault_server, fake_time).complete(REQUEST)
    assert fault_server.calls == 1
    assert fake_time.waits == []


def test_a_dropped_connection_is_retried(fault_server: FaultServer, fake_time: FakeTime) -> None:
    fault_server.script(drop(), reply("Paris"))
    assert client(fault_server, fake_time).complete(REQUEST).text == "Paris"
    assert fault_server.calls == 2


def test_a_server_that_is_down_is_retried_then_named(fake_time: FakeTime) -> None:
    with FaultServer() as server:
        pass  # closed: its port now refuses connections
    lm = client(server, fake_time, retries=2)
    with pytest.raises(HostedLMError) as failed:
        lm.complete(REQUEST)
    assert str(failed.value).startswith(f"{where(server)}: connection failed: ")
    assert str(failed.value).endswith("(after 3 tries)")
    assert len(fake_time.waits) == 2


def test_each_try_waits_at_most_the_timeout(fault_server: FaultServer) -> None:
    fault_server.script(hang(30), hang(30))
    lm = client(fault_server, retries=1, timeout_s=1.0, base_s=0.01)
    started = time.monotonic()
    with pytest.raises(HostedLMError) as failed:
        lm.complete(REQUEST)
    assert 1.9 <= time.monotonic() - started < 5.0
    assert str(failed.value) == (
        f"{where(fault_server)}: no reply within the timeout of 1 s (after 2 tries)"
    )
    assert fault_server.calls == 2


# Giving up: one line, naming the model, its address and what the server said ---------------------


def test_after_the_last_try_the_error_says_what_the_server_said(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.otherwise = status(503, "the model is loading")
    with pytest.raises(HostedLMError) as failed:
        client(fault_server, fake_time, retries=3).complete(REQUEST)
    assert str(failed.value) == (
        f"{where(fault_server)}: server said 503 Service Unavailable: the model is loading "
        "(after 4 tries)"
    )
    assert fault_server.calls == 4


def test_retries_zero_fails_on_the_first_500(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(status(500, "boom"), reply("Paris"))
    with pytest.raises(HostedLMError, match=r"500 Internal Server Error: boom \(not retried"):
        client(fault_server, fake_time, retries=0).complete(REQUEST)
    assert fault_server.calls == 1


def test_a_retry_after_longer_than_lmc_waits_is_not_retried(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(rate_limited(retry_after=3600, message="quota spent"))
    with pytest.raises(HostedLMError) as failed:
        client(fault_server, fake_time).complete(REQUEST)
    assert str(failed.value) == (
        f"{where(fault_server)}: server said 429 Too Many Requests: quota spent; it asks to be "
        "left alone for 3600 s, more than the 60 s lmc waits at most (after 1 try)"
    )
    assert fake_time.waits == []


def test_no_retry_starts_after_the_total_time(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.otherwise = status(500)
    lm = client(fault_server, fake_time, retries=50, base_s=10.0, max_wait_s=10.0, total_s=35.0)
    with pytest.raises(HostedLMError, match=r"\(after 4 tries in 30 s\)$"):
        lm.complete(REQUEST)
    assert fake_time.waits == [10.0, 10.0, 10.0]


def test_a_long_error_body_becomes_one_short_line(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(body("<html>\n<h1>Bad gateway</h1>\n" + "x" * 5000, code=404))
    with pytest.raises(HostedLMError) as failed:
        client(fault_server, fake_time).complete(REQUEST)
    message = str(failed.value)
    assert "\n" not in message
    assert len(message) < 400
    assert "404 Not Found: <html> <h1>Bad gateway</h1> xxx" in message


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (no_choices(), "it has no choices"),
        (reply(123), "its content is not a string: 123"),
        (reply(["a"]), "its content is not a string: ['a']"),
        (reply(None), "its content is null (finish reason 'stop')"),
        (body("{not json"), "its body is not JSON"),
        (payload({"object": "error"}), "no 'choices'"),
    ],
    ids=["no-choices", "content-123", "content-list", "content-null", "not-json", "not-completion"],
)
def test_a_reply_that_is_not_a_completion_is_a_one_line_error(
    fault_server: FaultServer, fake_time: FakeTime, fault: object, problem: str
) -> None:
    fault_server.script(fault)  # type: ignore[arg-type]
    with pytest.raises(HostedLMError) as failed:
        client(fault_server, fake_time).complete(REQUEST)
    message = str(failed.value)
    assert message.startswith(f"{where(fault_server)}: the server's reply is not usable: ")
    assert problem in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert fault_server.calls == 1  # a server that answers so would again


def test_a_text_completion_without_text_is_an_error(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(reply(None))
    with pytest.raises(HostedLMError, match="its content is null"):
        client(fault_server, fake_time).complete(LMRequest(prompt="Q: capital of France?\nA:"))
    assert fault_server.requests[0].path == "/v1/completions"


# The server's response format is still learned, and learning it is not a retry -------------------


def test_a_refused_response_format_is_learned_and_a_429_while_probing_is_retried(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    fault_server.script(
        rate_limited(retry_after=1),
        status(400, "response_format json_schema is not supported"),
        reply('{"answer": "Paris"}'),
        reply('{"answer": "Rome"}'),
    )
    lm = client(fault_server, fake_time, retries=1, jitter=0.0)
    request = LMRequest(messages=REQUEST.messages, json_schema=SCHEMA)
    assert lm.complete(request).text == '{"answer": "Paris"}'
    assert lm.complete(request).text == '{"answer": "Rome"}'
    formats = [r.body["response_format"]["type"] for r in fault_server.requests]
    assert formats == ["json_schema", "json_schema", "json_object", "json_object"]
    assert fake_time.waits == [1.0]


def test_a_500_naming_the_response_format_is_a_refusal_as_llama_cpps_server_says_it(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    refusal = (
        "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', "
        "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
    )
    fault_server.script(status(500, refusal), reply('{"answer": "Paris"}'))
    lm = client(fault_server, fake_time)
    assert lm.complete(LMRequest(messages=REQUEST.messages, json_schema=SCHEMA)).text
    formats = [r.body["response_format"]["type"] for r in fault_server.requests]
    assert formats == ["json_schema", "json_object"]
    assert fake_time.waits == []


def test_a_call_refused_for_its_own_sake_does_not_teach_the_client_another_format(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    # The first call's prompt is too long for the server: a 400 in either format, and the call
    # fails. The server takes OpenAI's format; the next call must still ask in it.
    too_long = "the request exceeds the available context size, try increasing it"
    fault_server.script(status(400, too_long), status(400, too_long), reply('{"answer": "Paris"}'))
    lm = client(fault_server, fake_time)
    request = LMRequest(messages=REQUEST.messages, json_schema=SCHEMA)
    with pytest.raises(HostedLMError, match="exceeds the available context size"):
        lm.complete(request)
    assert lm.complete(request).text == '{"answer": "Paris"}'
    formats = [r.body["response_format"]["type"] for r in fault_server.requests]
    assert formats == ["json_schema", "json_object", "json_schema"]


def test_a_reasoning_first_call_refused_for_its_own_sake_keeps_the_grammar(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    if ON["client"] is not ServedLM:
        pytest.skip("only the direct client sends a grammar")
    too_long = "the request exceeds the available context size, try increasing it"
    fault_server.script(status(400, too_long), status(400, too_long), reply('{"answer": "Paris"}'))
    lm = client(fault_server, fake_time)
    request = LMRequest(messages=REQUEST.messages, json_schema=SCHEMA, reasoning_first=100)
    with pytest.raises(HostedLMError, match="exceeds the available context size"):
        lm.complete(request)
    lm.complete(request)
    held = ["grammar" in r.body for r in fault_server.requests]
    assert held == [True, False, True]


def test_first_calls_that_probe_the_format_at_once_all_succeed(fault_server: FaultServer) -> None:
    # llama-cpp-python's server refuses OpenAI's format; eight first calls meet the refusal
    # together (bench/lmc_side.py made its first call alone to avoid this).
    arrived = threading.Barrier(8, timeout=5)

    def serve(handler: Any, request: Any) -> None:
        if request.body["response_format"]["type"] == "json_schema":
            with contextlib.suppress(threading.BrokenBarrierError):
                arrived.wait()
            status(500, "1 validation error: ('body', 'response_format', 'type')")(handler, request)
        else:
            reply('{"answer": "Paris"}')(handler, request)

    fault_server.otherwise = serve
    lm = client(fault_server, retries=0)
    request = LMRequest(messages=REQUEST.messages, json_schema=SCHEMA)
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: lm.complete(request).text, range(8)))
    assert texts == ['{"answer": "Paris"}'] * 8
    assert lm.complete(request).text
    assert fault_server.requests[-1].body["response_format"]["type"] == "json_object"


# The step's name is added where the runtime knows it ---------------------------------------------


def test_a_failed_call_names_its_step(fault_server: FaultServer) -> None:
    fault_server.otherwise = status(500, "boom")
    lm = lmc.LM("openai/x", api_base=fault_server.url, retries=0)
    with lmc.context(lm, cache=False), pytest.raises(LMCallFailed) as failed:
        lmc.Predict("question -> answer")(question="Capital of France?")
    assert isinstance(failed.value, HostedLMError)
    assert str(failed.value).startswith("step '")
    assert f"': {where(fault_server)}: server said 500 Internal Server Error: boom" in str(
        failed.value
    )


def test_timeout_and_retries_reach_the_client_from_configure(fault_server: FaultServer) -> None:
    context = lmc.context("openai/x", api_base=fault_server.url, timeout=7.5, retries=1)
    assert isinstance(context.lm, ServedLM)
    assert (context.lm.timeout_s, context.lm.retries) == (7.5, 1)
    default = lmc.context("openai/x", api_base=fault_server.url).lm
    assert isinstance(default, ServedLM)
    assert (default.timeout_s, default.retries) == (120.0, 5)
    hosted = lmc.context("ollama/x", api_base=fault_server.url, timeout=7.5, retries=1).lm
    assert isinstance(hosted, HostedLM)
    assert (hosted.timeout_s, hosted.retries) == (7.5, 1)


def test_timeout_and_retries_go_with_a_model_string_not_a_client() -> None:
    with pytest.raises(InputError, match=r"lmc.LM\(\.\.\., timeout=, retries=\)"):
        lmc.context(lmc.LM("openai/x"), retries=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be a whole number, 0 or more, not -1"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"timeout": 0}, "timeout must be more than 0 seconds, not 0"),
        ({"timeout": float("nan")}, "timeout must be more than 0 seconds"),
        ({"timeout": "10"}, "timeout must be a number of seconds"),
    ],
)
def test_bad_limits_are_input_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        lmc.LM("openai/x", **options)  # type: ignore[arg-type]


# Headers and addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 0.5 "}, 0.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, 60.0),  # 100 s after the epoch
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_seconds(headers, now=40.0) == seconds


def test_retry_after_without_headers() -> None:
    assert retry_after_seconds(None) is None


def test_which_statuses_are_retried() -> None:
    assert [c for c in range(100, 600) if retried_status(c)] == [408, 409, 429, *range(500, 600)]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "https://api.example.com/v1/",
        "http://localhost",
        "HTTP://[::1]:8080/v1",
        "https://user:secret@host:8000/v1?key=abc",
    ],
)
def test_a_server_address_is_accepted(url: str) -> None:
    assert checked_api_base(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:8000/v1", "it must start with http:// or https://"),
        ("localhost:8000", "it must start with http:// or https://"),
        ("ftp://host/v1", "it must start with http:// or https://"),
        ("http://", "it names no host"),
        ("http:///v1", "it names no host"),
        ("http://host:99999/v1", "its port is not a number from 0 to 65535"),
        ("http://host:80a/v1", "its port is not a number from 0 to 65535"),
        ("http://host name/v1", "it contains spaces or control characters"),
        ("http://host/v1\x1b[2J", "it contains spaces or control characters"),
        ("", "it is empty"),
    ],
)
def test_a_malformed_address_is_an_input_error(url: str, problem: str) -> None:
    with pytest.raises(InputError) as failed:
        lmc.LM("openai/x", api_base=url)
    assert str(failed.value) == (
        f"api base {url!r} is not a server address: {problem}; expected "
        "http(s)://HOST[:PORT]/PATH, such as http://127.0.0.1:8000/v1"
    )


# What a reply says it cost ------------------------------------------------------------------------


def test_the_prompt_tokens_a_server_reused_are_read_where_it_says_and_unknown_where_not(
    fault_server: FaultServer, fake_time: FakeTime
) -> None:
    said = completion("Paris")
    said["usage"]["prompt_tokens_details"] = {"cached_tokens": 4}
    fault_server.script(payload(said), reply("Paris"))
    lm = client(fault_server, fake_time)
    reused = lm.complete(REQUEST)
    assert (reused.prompt_tokens, reused.reused_prompt_tokens) == (7, 4)
    silent = lm.complete(REQUEST)  # llama-cpp-python's server does not say
    assert (silent.prompt_tokens, silent.reused_prompt_tokens) == (7, None)
