"""A dataset run loses no finished record: each result is on disk in input order the moment it
finishes, a record whose LM call fails is marked failed and the run goes on (`--max-errors` stops
it early), and a rerun onto the same `--out` runs only what is missing or failed.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
from programs import QA

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.hosted import HostedLMError
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

QUESTIONS = ["a", "b", "down", "d", "e"]
DOWN: set[str] = {"down"}  # questions whose LM call fails, until a test says otherwise


def question(request: LMRequest) -> str:
    return request.messages[1].content.split("\n", 1)[1].split("\n\n", 1)[0]


def reply(request: LMRequest) -> str:
    asked = question(request)
    if asked in DOWN:
        raise HostedLMError("openai/x: ServiceUnavailableError: 503 the server is down")
    return json.dumps({"answer": f"echo {asked}"})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(reply, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.setattr(f"{__name__}.DOWN", {"down"})
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("in.jsonl").write_text(
        "".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS), encoding="utf-8"
    )
    return lm


def lmc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return lmc(capsys, "run", "qa.lmp", "--data", "in.jsonl", "--out", "out.jsonl", *extra)


def results() -> list[dict[str, object]]:
    return [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]


def test_an_lm_error_fails_its_record_only_and_every_other_result_is_written(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys)

    assert code == EXIT_FAILED
    lines = results()
    assert [line["record"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line.get("outputs") for line in lines] == [
        {"answer": "echo a"},
        {"answer": "echo b"},
        None,
        {"answer": "echo d"},
        {"answer": "echo e"},
    ]
    assert "503 the server is down" in str(lines[2]["error"])
    assert "5 records, 1 failed" in err


def test_each_result_is_on_disk_before_the_next_record_runs(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_when_asked: dict[str, int] = {}

    def watching(request: LMRequest) -> str:
        out = Path("out.jsonl")
        seen_when_asked[question(request)] = (
            len(out.read_text().splitlines()) if out.exists() else 0
        )
        return json.dumps({"answer": "x"})

    fake.replies = watching
    DOWN.clear()
    run(capsys, "--concurrency", "1")

    assert seen_when_asked == {"a": 0, "b": 1, "down": 2, "d": 3, "e": 4}


def test_a_rerun_runs_only_the_failed_record_and_leaves_the_file_in_order(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys)
    asked_before = len(fake.requests)
    DOWN.clear()  # the server is back

    code, _, err = run(capsys, "--no-cache")

    assert code == EXIT_OK
    assert len(fake.requests) == asked_before + 1  # only record 3
    lines = results()
    assert [line["record"] for line in lines] == [1, 2, 3, 4, 5]
    assert all("outputs" in line for line in lines)
    assert "1 records (4 done before, kept), 0 failed" in err


def test_a_run_killed_mid_line_resumes_after_the_last_whole_line(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    DOWN.clear()
    first = json.dumps({"record": 1, "inputs": {"question": "a"}, "outputs": {"answer": "1"}})
    Path("out.jsonl").write_text(first + '\n{"record": 2, "inpu', encoding="utf-8")

    code, _, _ = run(capsys, "--no-cache")

    assert code == EXIT_OK
    assert len(fake.requests) == 4  # records 2 to 5
    lines = results()
    assert [line["record"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["outputs"] == {"answer": "1"}  # kept as it was, not run again


def test_a_blank_line_in_the_results_is_skipped_and_the_rerun_ends_with_its_summary(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    first = json.dumps({"record": 1, "inputs": {"question": "a"}, "outputs": {"answer": "1"}})
    failed = json.dumps({"record": 2, "inputs": {"question": "b"}, "error": "x", "reply": None})
    Path("out.jsonl").write_text(f"{first}\n\n{failed}\n", encoding="utf-8")

    code, _, err = run(capsys, "--no-cache")

    assert code == EXIT_FAILED  # record 3 failed; the blank line is no failure
    assert "4 records (1 done before, kept), 1 failed" in err
    lines = results()  # rewritten in order, one line per record, the blank one gone
    assert [line["record"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["outputs"] == {"answer": "1"}
    assert lines[1]["outputs"] == {"answer": "echo b"}


def test_max_errors_stops_the_run_and_keeps_what_finished(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--max-errors", "1", "--concurrency", "1")

    assert code == EXIT_FAILED
    assert [line["record"] for line in results()] == [1, 2, 3]
    assert "wrote out.jsonl: 3 of 5 records, 1 failed" in err
    assert "stopped after 1 failed records (--max-errors 1)" in err


def test_results_of_other_inputs_are_not_resumed_but_refused_naming_the_line(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    other = json.dumps({"record": 1, "inputs": {"question": "zzz"}, "outputs": {"answer": "1"}})
    Path("out.jsonl").write_text(other + "\n", encoding="utf-8")

    code, _, err = run(capsys)

    assert code == EXIT_BAD_INPUT
    assert "out.jsonl: line 1: record 1 has other inputs than the data's" in err
    assert "--no-resume" in err
    assert fake.requests == []
    assert Path("out.jsonl").read_text() == other + "\n"  # nothing the user had is lost


@pytest.mark.parametrize("resume", ["--resume", "--no-resume"])
def test_results_another_run_is_writing_are_refused_and_left_alone(
    resume: str, fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = json.dumps({"record": 1, "inputs": {"question": "a"}, "outputs": {"answer": "1"}})
    Path("out.jsonl").write_text(earlier + "\n", encoding="utf-8")

    with Path("out.jsonl").open("a") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX)
        code, _, err = run(capsys, resume)

    assert code == EXIT_BAD_INPUT
    assert "out.jsonl: another lmc run is writing these results" in err
    assert fake.requests == []
    assert Path("out.jsonl").read_text(encoding="utf-8") == earlier + "\n"


def test_a_refused_resume_leaves_the_earlier_trace_as_it_was(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    other = json.dumps({"record": 1, "inputs": {"question": "zzz"}, "outputs": {"answer": "1"}})
    Path("out.jsonl").write_text(other + "\n", encoding="utf-8")
    Path("trace.jsonl").write_text('{"record": 1, "step": "gen"}\n', encoding="utf-8")

    assert run(capsys, "--trace", "trace.jsonl")[0] == EXIT_BAD_INPUT

    assert Path("trace.jsonl").read_text() == '{"record": 1, "step": "gen"}\n'


def test_a_resumed_run_adds_to_its_trace_less_a_line_a_kill_cut(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--trace", "trace.jsonl")  # record 3 fails
    earlier = Path("trace.jsonl").read_text(encoding="utf-8")
    Path("trace.jsonl").write_text(earlier + '{"record": 9, "st', encoding="utf-8")
    DOWN.clear()

    code, _, _ = run(capsys, "--trace", "trace.jsonl", "--no-cache")

    assert code == EXIT_OK
    text = Path("trace.jsonl").read_text(encoding="utf-8")
    assert text.startswith(earlier)
    added = [json.loads(line) for line in text[len(earlier) :].splitlines()]
    assert [line["record"] for line in added] == [3]  # the one record run again


def test_a_run_that_starts_over_starts_its_trace_over(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--trace", "trace.jsonl")
    DOWN.clear()

    run(capsys, "--trace", "trace.jsonl", "--no-resume", "--no-cache")

    lines = Path("trace.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["record"] for line in lines) == [1, 2, 3, 4, 5]


def test_an_out_file_that_is_no_results_file_is_refused_asking_for_another_out(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # A slip of the --out path onto the user's own JSONL: --no-resume would destroy it, so it is
    # not offered as the way to start over.
    theirs = '{"question": "mine", "answer": "keep"}\n'
    Path("out.jsonl").write_text(theirs, encoding="utf-8")

    code, _, err = run(capsys)

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: out.jsonl: line 1: not a result line of lmc run, so the file holds "
        "something else; write the results elsewhere with another --out (--no-resume would "
        "overwrite the file)\n"
    )
    assert fake.requests == []
    assert Path("out.jsonl").read_text() == theirs


def test_a_line_that_is_no_result_among_results_is_refused_asking_to_mend_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    DOWN.clear()
    run(capsys)
    kept = Path("out.jsonl").read_text().splitlines(keepends=True)
    edited = "".join([*kept[:2], "an edit\n", *kept[2:]])
    Path("out.jsonl").write_text(edited, encoding="utf-8")
    asked = len(fake.requests)

    code, _, err = run(capsys)

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: out.jsonl: line 3: not a result line of lmc run, after 2 that are; mend or "
        "remove it to resume, keeping those results (--no-resume would start over, overwriting "
        "them)\n"
    )
    assert len(fake.requests) == asked
    assert Path("out.jsonl").read_text() == edited


def test_no_resume_starts_over(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    DOWN.clear()
    run(capsys)
    asked = len(fake.requests)

    code, _, _ = run(capsys, "--no-resume", "--no-cache")

    assert code == EXIT_OK
    assert len(fake.requests) == 2 * asked
    assert len(results()) == 5


def test_a_temporary_file_a_killed_rewrite_left_is_removed_by_the_next_run(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = 2**22 + 12345  # past Linux's default pid_max: no process has it
    Path(f".out.jsonl.{dead}.abcd1234.tmp").write_text("half a file")

    run(capsys)

    assert not Path(f".out.jsonl.{dead}.abcd1234.tmp").exists()
    assert [p.name for p in Path().glob(".out.jsonl*")] == []
