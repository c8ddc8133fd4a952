"""`lmc run`/`eval`/`compile`/`opt` against a served model that misbehaves (tests/faultserver.py):
retries with backoff and `Retry-After`, `--timeout` and `--retries`, and the one line (exit 1,
no traceback) a call that failed for good ends in; a malformed `--api-base` is bad input (exit 2).

`lmc.cli.main` runs in-process from inside `tmp_path`, on `--lm openai/x --api-base SERVER`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from faultserver import FaultServer, hang, no_choices, rate_limited, reply, status
from programs import QA

from lmc.backends.clients import retry
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

PARIS = '{"answer": "Paris"}'


@pytest.fixture(autouse=True)
def program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The program in the cwd; backoff waits of milliseconds (a `Retry-After` is still obeyed)."""
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    monkeypatch.setattr(retry, "DEFAULT_BACKOFF", retry.Backoff(base_s=0.01))


def lmc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `lmc` command; never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def run_qa(
    capsys: pytest.CaptureFixture[str], server: FaultServer, *options: str
) -> tuple[int, str, str]:
    return lmc(
        capsys,
        "run",
        "qa.lmp",
        "--lm",
        "openai/x",
        "--api-base",
        server.url,
        "--input",
        "question=What is the capital of France?",
        *options,
    )


def one_error_line(err: str) -> str:
    """The error line of stderr, asserting it is the only line."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lmc: error: ")
    return lines[0].removeprefix("lmc: error: ")


def test_the_first_call_of_a_run_is_retried_after_a_429_and_honours_retry_after(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    fault_server.script(rate_limited(retry_after=1), reply(PARIS))
    code, out, _ = run_qa(capsys, fault_server)
    assert code == EXIT_OK
    assert "Paris" in out
    assert fault_server.calls == 2
    assert fault_server.gaps()[0] >= 1.0


def test_a_500_then_a_reply_is_a_successful_run(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    fault_server.script(status(500), reply(PARIS))
    code, out, _ = run_qa(capsys, fault_server, "--json")
    assert code == EXIT_OK
    assert json.loads(out) == {"answer": "Paris"}
    assert fault_server.calls == 2


def test_after_the_last_try_one_line_names_the_step_the_model_and_what_the_server_said(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    fault_server.otherwise = status(503, "the model is loading")
    code, out, err = run_qa(capsys, fault_server, "--retries", "3")
    assert code == EXIT_FAILED
    assert out == ""
    assert one_error_line(err) == (
        f"step 'gen': model openai/x at http://127.0.0.1:{fault_server.port}/v1: server said "
        "503 Service Unavailable: the model is loading (after 4 tries)"
    )
    assert fault_server.calls == 4


def test_retries_zero_fails_on_the_first_500(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    fault_server.script(status(500, "boom"), reply(PARIS))
    code, _, err = run_qa(capsys, fault_server, "--retries", "0")
    assert code == EXIT_FAILED
    assert one_error_line(err).endswith(
        "server said 500 Internal Server Error: boom (not retried: retries are 0)"
    )
    assert fault_server.calls == 1


def test_a_hanging_server_fails_each_try_after_the_timeout(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    fault_server.otherwise = hang(30)
    started = time.monotonic()
    code, _, err = run_qa(capsys, fault_server, "--timeout", "1", "--retries", "1")
    assert 1.9 <= time.monotonic() - started < 5.0  # two tries of about a second each
    assert code == EXIT_FAILED
    assert one_error_line(err).endswith("no reply within the timeout of 1 s (after 2 tries)")
    assert fault_server.calls == 2


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (no_choices(), "it has no choices"),
        (reply(123), "its content is not a string: 123"),
        (reply(None), "its content is null (finish reason 'stop')"),
    ],
    ids=["no-choices", "content-123", "content-null"],
)
def test_a_reply_that_is_not_a_completion_is_one_line(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer, fault: object, problem: str
) -> None:
    fault_server.script(fault)  # type: ignore[arg-type]
    code, _, err = run_qa(capsys, fault_server)
    assert code == EXIT_FAILED
    assert one_error_line(err) == (
        f"step 'gen': model openai/x at http://127.0.0.1:{fault_server.port}/v1: "
        f"the server's reply is not usable: {problem}"
    )


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8000/v1", "ftp://host/v1", "http://", "http://host:99999/v1", "http://a b"]
)
def test_a_malformed_api_base_is_bad_input_before_any_work(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer, url: str
) -> None:
    Path("questions.jsonl").write_text('{"question": "q"}\n', encoding="utf-8")
    code, out, err = lmc(
        capsys,
        "run",
        "qa.lmp",
        "--lm",
        "openai/x",
        "--api-base",
        url,
        "--data",
        "questions.jsonl",
        "--out",
        "answers.jsonl",
    )
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert one_error_line(err).startswith(f"api base {url!r} is not a server address: ")
    assert not Path("answers.jsonl").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--timeout", "0"], "--timeout must be more than 0 seconds, not 0"),
        (["--timeout", "-1.5"], "--timeout must be more than 0 seconds, not -1.5"),
        (["--timeout", "inf"], "--timeout must be more than 0 seconds, not inf"),
        (["--retries", "-1"], "--retries must be 0 or more, not -1"),
    ],
)
def test_a_bad_timeout_or_retries_is_bad_input(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer, option: list[str], message: str
) -> None:
    code, _, err = run_qa(capsys, fault_server, *option)
    assert code == EXIT_BAD_INPUT
    assert one_error_line(err) == message
    assert fault_server.calls == 0


def test_eval_and_compile_retry_too(
    capsys: pytest.CaptureFixture[str], fault_server: FaultServer
) -> None:
    Path("data.jsonl").write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": "Paris"}) + "\n" for i in range(4)),
        encoding="utf-8",
    )
    served = ["--lm", "openai/x", "--api-base", fault_server.url, "--retries", "2"]
    fault_server.script(status(502))
    code, _, err = lmc(
        capsys,
        "eval",
        "qa.lmp",
        "--data",
        "data.jsonl",
        "--metric",
        "exact_match(answer)",
        *served,
        "--timeout",
        "30",
    )
    assert code == EXIT_OK, err
    assert fault_server.calls == 5  # four records, one of them tried twice
    fault_server.script(status(429))
    code, _, err = lmc(
        capsys,
        "compile",
        "qa.lmp",
        "--train",
        "data.jsonl",
        "--metric",
        "exact_match(answer)",
        "-p",
        "bootstrap-demos{max_demos=1,candidates=1}",
        "-o",
        "qa.json",
        *served,
    )
    assert code == EXIT_OK, err
    assert fault_server.pending == 0  # the 429 was answered, and the call retried
    assert Path("qa.json").exists()


def test_opt_without_data_refuses_the_call_options(capsys: pytest.CaptureFixture[str]) -> None:
    for option in (["--timeout", "5"], ["--retries", "2"]):
        code, _, err = lmc(capsys, "opt", "qa.lmp", "-p", "dead-steps", *option)
        assert code == EXIT_BAD_INPUT
        assert one_error_line(err) == (
            f"{option[0]} is for passes that learn from data: add --train DATA"
        )
