"""`lmc run`, `lmc trace show` and `lmc cache stats|clear` as users and scripts see them: exit
codes, what goes to stdout and stderr, and which files get written.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from programs import QA, TWICE

from lmc.backends.base import LMRequest, LMResponse
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main


def first_input(request: LMRequest) -> str:
    """The value of the (single) input field, from the request's first user message: the text
    between `name:` and the first blank line (none of the values here has one)."""
    return request.messages[1].content.split("\n", 1)[1].split("\n\n", 1)[0]


def reply(request: LMRequest) -> str:
    """Echo the question (or double `n`); the question `bad` gets an unusable reply."""
    value = first_input(request)
    if "`doubled`" in request.messages[0].content:
        return json.dumps({"doubled": 2 * int(value)})
    return "garbage" if value == "bad" else json.dumps({"answer": f"echo {value}"})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    """The LM every `--lm` (or the default model) resolves to; the programs, in the cwd."""
    lm = FakeLM(reply, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("twice.lmp").write_text(TWICE, encoding="utf-8")
    return lm


def lmc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `lmc` command; never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def write_lines(path: str, *lines: str) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_lines(path: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


# one run -----------------------------------------------------------------------------------------


def test_run_prints_each_output_as_name_and_value(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = lmc(capsys, "run", "qa.lmp", "--input", "question=hi there")

    assert code == EXIT_OK
    assert out == "answer: echo hi there\n"
    assert len(fake.requests) == 1


def test_run_json_prints_one_json_object(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--json")

    assert code == EXIT_OK
    assert out.count("\n") == 1
    assert json.loads(out) == {"answer": "echo hi"}


def test_a_typed_input_is_converted_from_its_text(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = lmc(capsys, "run", "twice.lmp", "--input", "n=3", "--json")

    assert code == EXIT_OK
    assert json.loads(out) == {"doubled": 6}
    assert first_input(fake.requests[0]) == "3"


def test_a_typed_input_that_does_not_convert_exits_2_naming_the_field(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lmc(capsys, "run", "twice.lmp", "--input", "n=abc")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: --input: n: ")
    assert "integer" in err
    assert fake.requests == []


def test_an_unknown_input_field_exits_2(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lmc(capsys, "run", "qa.lmp", "--input", "query=hi")

    assert code == EXIT_BAD_INPUT
    assert "the program has no input 'query'; it takes question" in err
    assert fake.requests == []


def test_a_missing_input_exits_2_naming_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lmc(capsys, "run", "qa.lmp")

    assert code == EXIT_BAD_INPUT
    assert "missing 'question'" in err
    assert fake.requests == []


def test_a_reply_unusable_after_repair_exits_1_showing_the_reply(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lmc(capsys, "run", "qa.lmp", "--input", "question=bad")

    assert code == EXIT_FAILED
    assert out == ""
    assert "step 'gen'" in err
    assert "garbage" in err
    assert len(fake.requests) == 2


# datasets ----------------------------------------------------------------------------------------


def test_a_dataset_run_writes_one_line_per_record_in_order(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = [f"q{i}" for i in range(5)]
    write_lines("in.jsonl", *(json.dumps({"question": q, "expected": "x"}) for q in questions))

    code, out, err = lmc(
        capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl", "--concurrency", "2"
    )

    assert code == EXIT_OK
    assert out == ""
    assert read_lines("out.jsonl") == [
        {"record": i + 1, "inputs": {"question": q}, "outputs": {"answer": f"echo {q}"}}
        for i, q in enumerate(questions)
    ]
    assert "wrote out.jsonl: 5 records, 0 failed" in err
    assert [p.name for p in Path().iterdir() if p.name.startswith(".out.jsonl")] == []


def test_a_dataset_run_says_what_the_model_read_and_wrote_and_how_fast(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.prefix_cache = True  # says, as the embedded model does, what it reused
    write_lines("in.jsonl", *(json.dumps({"question": f"q{i}"}) for i in range(3)))

    code, _, err = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_OK
    found = re.search(
        r"^the model read (\d+) prompt tokens \((\d+) more reused from earlier prompts\) at "
        r"[0-9.]+ tokens/s and wrote (\d+) at [0-9.]+ tokens/s$",
        err,
        re.MULTILINE,
    )
    assert found is not None, err
    read, reused, wrote = map(int, found.groups())
    sent = [len(str(r.to_json())) // 4 for r in fake.requests]
    assert read + reused == sum(sent)  # every prompt token sent is either read or reused
    assert reused > 0  # the second and third calls share the step's instruction with the first
    assert wrote > 0


def test_a_dataset_run_warns_of_replies_cut_where_the_model_looped(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = fake.complete

    def looping_on_q1(request: LMRequest) -> LMResponse:
        response = answer(request)
        # as the embedded model reports a string it closed in a loop (`grammar_check`)
        return replace(response, loops_closed=int(first_input(request) == "q1"))

    monkeypatch.setattr(fake, "complete", looping_on_q1)
    write_lines("in.jsonl", *(json.dumps({"question": f"q{i}"}) for i in range(3)))

    code, _, err = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_OK
    assert "the model repeated itself in 1 string; lmc closed each once the loop was plain" in err


def test_a_dataset_run_all_from_the_cache_does_not_speak_for_the_model(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines("in.jsonl", json.dumps({"question": "q"}))
    assert lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "a.jsonl")[0] == EXIT_OK
    code, _, err = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "b.jsonl")
    assert code == EXIT_OK
    assert "0 LM calls (1 cached" in err
    assert "the model read" not in err  # it did no work


def test_a_dataset_run_without_out_prints_the_lines(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines("in.jsonl", '{"question": "a"}', '{"question": "b"}')

    code, out, _ = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl")

    assert code == EXIT_OK
    assert [json.loads(line)["outputs"] for line in out.splitlines()] == [
        {"answer": "echo a"},
        {"answer": "echo b"},
    ]


def test_a_dataset_from_a_pipe_runs_every_record(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pipe reads once; the run checks every record before it runs them, so it reads twice.
    # Before it kept a copy, `cat in.jsonl | lmc run --data /dev/stdin` checked 2 records, then
    # ran none, and said "2 records, 0 failed".
    os.mkfifo("in.fifo")

    def feed() -> None:
        with open("in.fifo", "w", encoding="utf-8") as pipe:
            pipe.write('{"question": "a"}\n{"question": "b"}\n')

    feeder = threading.Thread(target=feed)
    feeder.start()
    code, out, _ = lmc(capsys, "run", "qa.lmp", "--data", "in.fifo")
    feeder.join()

    assert code == EXIT_OK
    assert [json.loads(line)["outputs"] for line in out.splitlines()] == [
        {"answer": "echo a"},
        {"answer": "echo b"},
    ]


@pytest.mark.parametrize("command", ["run", "eval"])  # read a record at a time, and whole
def test_a_dataset_saved_with_a_byte_order_mark_reads_every_record(
    command: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.jsonl").write_bytes(
        b"\xef\xbb\xbf"
        + b'{"question": "a", "answer": "echo a"}\n{"question": "b", "answer": "x"}\n'
    )
    metric = ["--metric", "contains(answer)"] if command == "eval" else []

    code, out, _ = lmc(capsys, command, "qa.lmp", "--data", "in.jsonl", *metric, "--out", "o.jsonl")

    assert code == EXIT_OK, out
    assert [line["record"] for line in read_lines("o.jsonl")] == [1, 2]
    assert sorted(first_input(r) for r in fake.requests) == ["a", "b"]  # run side by side


@pytest.mark.parametrize(
    ("second_line", "expected"),
    [
        ('{"question": "b"', "in.jsonl: record 2: expected a JSON object, found invalid JSON"),
        ('{"query": "b"}', "in.jsonl: record 2: missing 'question'"),
        ('["b"]', "in.jsonl: record 2: expected a JSON object, found list"),
    ],
)
def test_a_bad_record_exits_2_before_any_lm_call_or_output(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], second_line: str, expected: str
) -> None:
    write_lines("in.jsonl", '{"question": "a"}', second_line, '{"question": "c"}')

    code, out, err = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert expected in err
    assert not Path("out.jsonl").exists()
    assert fake.requests == []


def test_a_record_that_fails_exits_1_and_its_line_carries_error_and_reply(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines("in.jsonl", '{"question": "a"}', '{"question": "bad"}', '{"question": "c"}')

    code, _, err = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl")

    assert code == EXIT_FAILED
    first, failed, third = read_lines("out.jsonl")
    assert first["outputs"] == {"answer": "echo a"}
    assert third["outputs"] == {"answer": "echo c"}
    assert failed["record"] == 2
    assert failed["inputs"] == {"question": "bad"}
    assert "outputs" not in failed
    assert "step 'gen'" in str(failed["error"])
    assert failed["reply"] == "garbage"
    assert "3 records, 1 failed" in err


def test_out_without_data_exits_2(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--out", "out.jsonl")

    assert code == EXIT_BAD_INPUT
    assert "--out is for a dataset run" in err
    assert not Path("out.jsonl").exists()
    assert fake.requests == []


# options -----------------------------------------------------------------------------------------


def test_an_unknown_backend_exits_2_naming_the_backends(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--backend", "nope")

    assert code == EXIT_BAD_INPUT
    assert "unknown backend 'nope'" in err
    for name in ("chat", "completion", "json"):
        assert name in err
    assert fake.requests == []


def test_the_completion_backend_on_a_model_without_a_chat_template_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # The backend and the model named do not go together (a served model never has one).
    code, out, err = lmc(
        capsys, "run", "qa.lmp", "--input", "question=hi", "--backend", "completion"
    )

    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == (
        "lmc: error: the completion backend renders the model's chat template, and fake-model "
        "has none; use --backend json or chat\n"
    )
    assert fake.requests == []


def test_the_completion_backend_on_a_chat_template_that_fails_exits_1(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # The model file's own template cannot be used: a run error, as a model file that cannot be.
    fake.template = "{% for m in messages %}{{ m['content'] }"

    code, out, err = lmc(
        capsys, "run", "qa.lmp", "--input", "question=hi", "--backend", "completion"
    )

    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith(
        "lmc: error: the completion backend renders the model's chat template, and that of "
        "fake-model fails: "
    )
    assert err.count("\n") == 1
    assert fake.requests == []


def test_a_model_string_without_a_provider_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real model lookup: it refuses `nonsense` before loading anything.
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")

    code, out, err = lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--lm", "nonsense")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert "unknown model 'nonsense'" in err


# trace -------------------------------------------------------------------------------------------


def test_a_trace_written_by_run_is_shown_with_prompt_and_reply(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--trace", "t.jsonl")
    assert code == EXIT_OK
    assert len(read_lines("t.jsonl")) == 1

    code, out, _ = lmc(capsys, "trace", "show", "t.jsonl")

    assert code == EXIT_OK
    assert "Given the fields" in out  # the system prompt
    assert "question:" in out  # the rendered input
    assert '{"answer": "echo hi"}' in out  # the raw reply
    assert 'answer = "echo hi"' in out  # the parsed field


def test_a_trace_says_how_many_prompt_tokens_a_call_reused_where_the_model_said(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.prefix_cache = True
    write_lines("in.jsonl", *(json.dumps({"question": q}) for q in ("hi", "yo")))
    code, _, _ = lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--trace", "t.jsonl")
    assert code == EXIT_OK
    second = max(read_lines("t.jsonl"), key=lambda line: line["reused_prompt_tokens"])
    assert 0 < second["reused_prompt_tokens"] < second["prompt_tokens"]

    code, out, _ = lmc(capsys, "trace", "show", "t.jsonl")

    assert code == EXIT_OK
    assert f"tokens ({second['reused_prompt_tokens']} reused)" in out


def test_trace_show_of_a_missing_file_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lmc(capsys, "trace", "show", "missing.jsonl")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert "missing.jsonl: no such file" in err


def test_trace_show_of_a_line_that_is_not_json_exits_2_naming_the_line(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines("t.jsonl", "{oops")

    code, out, err = lmc(capsys, "trace", "show", "t.jsonl")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert "t.jsonl: line 1: not JSON" in err


def test_trace_show_of_a_file_that_is_not_a_trace_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # An easy mistake: showing a dataset run's results instead of its trace.
    write_lines("out.jsonl", '{"record": 1, "inputs": {"question": "a"}, "outputs": {}}')

    code, _, err = lmc(capsys, "trace", "show", "out.jsonl")

    assert code == EXIT_BAD_INPUT
    assert "out.jsonl" in err


# cache -------------------------------------------------------------------------------------------


def test_cache_stats_counts_a_cached_run_and_clear_empties_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    assert lmc(capsys, "run", "qa.lmp", "--input", "question=hi")[0] == EXIT_OK

    code, out, _ = lmc(capsys, "cache", "stats")
    assert code == EXIT_OK
    assert str(isolated_cache) in out
    assert ": 1 entries" in out
    assert "fake-model: 1" in out

    code, out, _ = lmc(capsys, "cache", "clear")
    assert code == EXIT_OK
    assert out == "removed 1 entries\n"

    code, out, _ = lmc(capsys, "cache", "stats")
    assert code == EXIT_OK
    assert ": 0 entries" in out


def test_a_second_run_is_answered_from_the_cache(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    first = lmc(capsys, "run", "qa.lmp", "--input", "question=hi")
    second = lmc(capsys, "run", "qa.lmp", "--input", "question=hi")

    assert first[:2] == second[:2] == (EXIT_OK, "answer: echo hi\n")
    assert len(fake.requests) == 1


def test_no_cache_neither_reads_nor_writes_the_cache(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    lmc(capsys, "run", "qa.lmp", "--input", "question=hi")
    lmc(capsys, "run", "qa.lmp", "--input", "question=hi", "--no-cache")

    assert len(fake.requests) == 2
    assert ": 1 entries" in lmc(capsys, "cache", "stats")[1]
