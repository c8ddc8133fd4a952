"""`lmc eval` as users and scripts see it: which metric scores, what is printed and written,
and the exit codes.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM` that
answers `echo QUESTION`, and an unusable reply for the question `bad`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from programs import QA, QA_WITH_METRIC

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.hosted import HostedLMError
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from lmc.compiler.artifact import CompileInfo
from lmc.ir.graph import Demo, StepParams

# exact_match scores 1, 0 and 0 (the last fails, so an eval of DATA exits 1); contains scores 1,
# 1 and 0.
DATA = [
    {"question": "hi", "answer": "echo hi"},
    {"question": "yo", "answer": "yo"},
    {"question": "bad", "answer": "x"},
]

SUMMARY = re.compile(
    r"^metric (?P<label>\S+) = (?P<score>[0-9.]+) on (?P<examples>\d+) examples? "
    r"\((?P<calls>\d+) LM calls, (?P<cached>\d+) cached, (?P<repairs>\d+) repairs, "
    r"(?P<failed>\d+) failed, [0-9.]+s\)$"
)

# The FakeLM does not say how many prompt tokens it reused, as a llama-cpp-python server does not.
MODEL_WORK = re.compile(
    r"the model read at most \d+ prompt tokens \(it did not say how many it reused\) at "
    r"[0-9.]+ tokens/s and wrote \d+ at [0-9.]+ tokens/s"
)


def last_input(request: LMRequest) -> str:
    """The value of the single input field in the request's last message that gives one (demos
    come before it, a repair request after it)."""
    asked = [m.content for m in request.messages if m.content.startswith("question:\n")]
    return asked[-1].split("\n", 1)[1].split("\n\n", 1)[0]


def reply(request: LMRequest) -> str:
    value = last_input(request)
    return "garbage" if value == "bad" else json.dumps({"answer": f"echo {value}"})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(reply, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("qa_metric.lmp").write_text(QA_WITH_METRIC, encoding="utf-8")
    write_records("data.jsonl", DATA)
    return lm


def write_records(path: str, records: list[dict[str, object]]) -> None:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def lmc_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def eval_with_metric(
    capsys: pytest.CaptureFixture[str], metric: str, *extra: str
) -> tuple[int, str, str]:
    """`lmc eval qa.lmp --data data.jsonl --metric METRIC ...`."""
    return lmc_cli(capsys, "eval", "qa.lmp", "--data", "data.jsonl", "--metric", metric, *extra)


def summary(out: str) -> dict[str, str]:
    match = SUMMARY.match(out.splitlines()[-1])
    assert match is not None, out
    return match.groupdict()


def write_compiled(path: str, source: str, metric: dict[str, object] | None) -> lmc.Program:
    """An artifact of QA as `lmc compile` would write it, with one learned demo."""
    program = lmc.loads(source)
    graph = program.ir.copy()
    graph.params["gen"] = StepParams(
        instruction="Answer like a librarian.",
        demos=(Demo((("question", "Who wrote Hamlet?"), ("answer", "Shakespeare"))),),
    )
    compiled = lmc.Program(graph, CompileInfo("fake-model", "json", metric=metric))
    compiled.save(path)
    return compiled


# scoring -----------------------------------------------------------------------------------------


def test_eval_prints_each_example_then_the_summary(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_FAILED
    lines = out.splitlines()
    assert lines[0] == 'record 1: 1.000  {"answer": "echo hi"}'
    assert lines[1] == 'record 2: 0.000  {"answer": "echo yo"}'
    assert lines[2].startswith("record 3: 0.000  error: step 'gen': ")
    assert summary(out) == {
        "label": "exact_match(answer)",
        "score": "0.333",
        "examples": "3",
        "calls": "4",
        "cached": "0",
        "repairs": "1",
        "failed": "1",
    }
    assert len(lines) == 4
    # What the model read and wrote, on stderr; no progress bar when stderr is not a terminal.
    assert MODEL_WORK.fullmatch(err.rstrip("\n")), err


def test_a_second_eval_is_answered_from_the_cache_but_asks_again_where_replies_failed(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    code, out, _ = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_FAILED
    # two records answered from the cache; the third's unusable reply and its repair were not
    # kept, so the model is asked again
    assert (summary(out)["calls"], summary(out)["cached"]) == ("2", "2")
    assert len(fake.requests) == 6


def test_out_writes_per_example_results_as_jsonl(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lmc_cli(
        capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl", "--out", "results/r.jsonl"
    )

    assert code == EXIT_FAILED
    assert out.count("\n") == 1
    assert summary(out)["score"] == "0.333"
    assert err.splitlines()[0] == "wrote results/r.jsonl"
    lines = [json.loads(line) for line in Path("results/r.jsonl").read_text().splitlines()]
    assert lines[0] == {
        "record": 1,
        "score": 1.0,
        "example": DATA[0],
        "prediction": {"answer": "echo hi"},
    }
    assert lines[1]["score"] == 0.0
    assert lines[2]["record"] == 3
    assert lines[2]["score"] == 0.0
    assert "prediction" not in lines[2]
    assert lines[2]["error"].startswith("step 'gen': ")
    assert [p.name for p in Path("results").iterdir()] == ["r.jsonl"]


def test_eval_exits_1_when_examples_failed_after_writing_the_results_and_the_summary(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(request: LMRequest) -> str:
        raise HostedLMError("openai/x: connection failed: Connection refused")

    fake.replies = unreachable

    code, out, _ = lmc_cli(
        capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl", "--out", "r.jsonl"
    )

    # A script checking the exit code must not take a score of nothing but failures for one.
    assert code == EXIT_FAILED
    assert (summary(out)["score"], summary(out)["failed"]) == ("0.000", "3")
    lines = [json.loads(line) for line in Path("r.jsonl").read_text().splitlines()]
    assert [line["record"] for line in lines] == [1, 2, 3]
    assert all("Connection refused" in line["error"] for line in lines)


def test_eval_exits_0_when_every_example_ran_however_it_scored(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("data.jsonl", DATA[:2])  # without the record whose reply is unusable

    code, out, _ = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_OK  # a wrong answer is a score, not a failure
    assert (summary(out)["score"], summary(out)["failed"]) == ("0.500", "0")


def test_eval_an_artifact_runs_the_compiled_program(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_compiled("qa.json", QA, {"name": "exact_match", "field": "answer"})

    code, out, _ = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_FAILED
    assert summary(out)["label"] == "exact_match(answer)"
    assert summary(out)["score"] == "0.333"
    first = fake.requests[0]
    assert "Answer like a librarian." in first.messages[0].content
    assert any("Who wrote Hamlet?" in m.content for m in first.messages)


# which metric ------------------------------------------------------------------------------------


def test_the_metric_option_comes_first(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    write_compiled("qa.json", QA_WITH_METRIC, {"name": "f1", "field": "answer"})

    for program in ("qa_metric.lmp", "qa.json"):
        code, out, _ = lmc_cli(
            capsys, "eval", program, "--data", "data.jsonl", "--metric", "contains(answer)"
        )
        assert code == EXIT_FAILED
        assert summary(out)["label"] == "contains(answer)"
        assert summary(out)["score"] == "0.667"


def test_then_the_metric_the_artifact_was_compiled_with(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_compiled("qa.json", QA_WITH_METRIC, {"name": "contains", "field": "answer"})

    code, out, _ = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_FAILED
    assert summary(out)["label"] == "contains(answer)"


def test_then_the_metric_the_file_declares(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_compiled("qa.json", QA_WITH_METRIC, None)

    code, out, _ = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_FAILED
    assert summary(out)["label"] == "exact_match(answer)"


@pytest.mark.parametrize("program", ["qa.lmp", "qa.json"])
def test_no_metric_at_all_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], program: str
) -> None:
    write_compiled("qa.json", QA, None)

    code, out, err = lmc_cli(capsys, "eval", program, "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err == "lmc: error: no metric: pass --metric NAME(FIELD)\n"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            "exact(answer)",
            "unknown metric 'exact'; expected 'contains', 'exact_match', 'f1' or 'numeric'; did you mean 'exact_match'?",
        ),
        ("exact_match(reply)", "'reply' is not an output of program QA; expected one of answer"),
        ("nowhere_at_all:fn", "cannot import nowhere_at_all"),
        ("answer", "expected NAME(FIELD) or package.module:function; found 'answer'"),
    ],
)
def test_a_metric_that_does_not_fit_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], metric: str, message: str
) -> None:
    code, _, err = lmc_cli(capsys, "eval", "qa.lmp", "--data", "data.jsonl", "--metric", metric)

    assert code == EXIT_BAD_INPUT
    assert message in err
    assert fake.requests == []


METRICS_MODULE = """\
def starts_with_echo(example, prediction):
    return prediction.answer.startswith("echo " + example.question)


def starts_with_echo_unless_yo(example, prediction):
    if example.question == "yo":
        raise ValueError("cannot score yo")
    return prediction.answer.startswith("echo " + example.question)
"""


@pytest.fixture
def python_metrics(fake: FakeLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eval_test_metrics.py").write_text(METRICS_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "eval_test_metrics", raising=False)


@pytest.mark.usefixtures("python_metrics")
def test_a_python_metric_scores_each_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = eval_with_metric(capsys, "eval_test_metrics:starts_with_echo")

    assert code == EXIT_FAILED
    assert summary(out)["label"] == "eval_test_metrics:starts_with_echo"
    assert summary(out)["score"] == "0.667"


@pytest.mark.parametrize(
    ("module_text", "raised"),
    [
        (
            "def score(example, prediction:\n",
            "SyntaxError: '(' was never closed (eval_test_broken_metric.py, line 1)",
        ),
        ("limit = 1 / 0\n", "ZeroDivisionError: division by zero"),
    ],
)
def test_a_python_metric_whose_module_fails_to_import_exits_2_in_one_line(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module_text: str,
    raised: str,
) -> None:
    (tmp_path / "eval_test_broken_metric.py").write_text(module_text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "eval_test_broken_metric", raising=False)

    code, out, err = eval_with_metric(capsys, "eval_test_broken_metric:score")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err == (
        "lmc: error: importing eval_test_broken_metric for metric "
        f"eval_test_broken_metric:score raised {raised}\n"
    )
    assert fake.requests == []


@pytest.mark.usefixtures("python_metrics")
def test_a_python_metric_that_raises_fails_that_record_and_the_rest_are_scored_and_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = eval_with_metric(
        capsys, "eval_test_metrics:starts_with_echo_unless_yo", "--out", "r.jsonl"
    )

    # as a record whose step fails: it scores 0, counts as failed, the evaluation finishes, and
    # the exit code says an example failed
    assert code == EXIT_FAILED
    assert summary(out)["score"] == "0.333"
    assert summary(out)["failed"] == "2"
    lines = [json.loads(line) for line in Path("r.jsonl").read_text().splitlines()]
    assert [line["record"] for line in lines] == [1, 2, 3]
    assert lines[0]["score"] == 1.0
    assert lines[1] == {
        "record": 2,
        "score": 0.0,
        "example": DATA[1],
        "prediction": {"answer": "echo yo"},  # what the program answered is kept
        "error": "metric eval_test_metrics:starts_with_echo_unless_yo raised ValueError: "
        "cannot score yo",
    }
    assert lines[2]["error"].startswith("step 'gen': ")
    assert "Traceback" not in err


@pytest.mark.usefixtures("python_metrics")
def test_a_metric_failure_is_shown_on_its_record_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = eval_with_metric(capsys, "eval_test_metrics:starts_with_echo_unless_yo")

    assert code == EXIT_FAILED
    assert out.splitlines()[1] == (
        "record 2: 0.000  error: metric eval_test_metrics:starts_with_echo_unless_yo raised "
        "ValueError: cannot score yo"
    )


@pytest.mark.usefixtures("python_metrics")
def test_a_metric_function_compiled_from_python_is_recorded_by_path_and_scores_when_passed(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    from eval_test_metrics import starts_with_echo  # type: ignore[import-not-found]

    train = [{"question": f"q{i}", "answer": f"echo q{i}"} for i in range(4)]
    lmc.compile(
        lmc.loads(QA),
        trainset=train,
        metric=starts_with_echo,
        pipeline="dead-steps",
        lm=lmc.context(fake, cache=False),
        save="qa.json",
        progress=False,
    )
    recorded = json.loads(Path("qa.json").read_text(encoding="utf-8"))["metric"]

    code, out, _ = lmc_cli(
        capsys, "eval", "qa.json", "--data", "data.jsonl", "--metric", recorded["name"]
    )

    assert recorded == {"name": "eval_test_metrics:starts_with_echo", "field": None}
    assert code == EXIT_FAILED
    assert summary(out)["label"] == "eval_test_metrics:starts_with_echo"


def test_an_artifact_python_metric_is_named_and_runs_only_when_passed_with_metric(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("scoring.py").write_text(
        "from pathlib import Path\n"
        "def answer_is_echo(example, prediction, trace=None):\n"
        "    Path('scored').touch()\n"
        "    return prediction['answer'].startswith('echo')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    write_compiled("qa.json", QA, {"name": "scoring:answer_is_echo", "field": None})

    code, _, err = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: the artifact was compiled with the Python metric scoring:answer_is_echo; "
        "lmc runs no code an artifact names outside its program, so pass it to score with it: "
        "--metric scoring:answer_is_echo\n"
    )
    assert not Path("scored").exists()
    assert fake.requests == []

    code, _, _ = lmc_cli(
        capsys, "eval", "qa.json", "--data", "data.jsonl", "--metric", "scoring:answer_is_echo"
    )

    assert code == EXIT_FAILED
    assert Path("scored").exists()


def test_an_artifact_metric_defined_in_a_script_asks_for_metric(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_compiled("qa.json", QA, {"name": "validate_answer", "field": None})

    code, _, err = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: the artifact was compiled with the Python metric validate_answer, defined "
        "where lmc cannot import it by name (a script, or inside a function); pass --metric "
        "package.module:function\n"
    )


# bad input ---------------------------------------------------------------------------------------


def test_a_bad_record_exits_2_naming_it(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    Path("data.jsonl").write_text('{"question": "hi", "answer": "a"}\nnot json\n', encoding="utf-8")

    code, out, err = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: data.jsonl: record 2: expected a JSON object")
    assert fake.requests == []


def test_a_record_without_the_expected_field_exits_2_naming_both(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("data.jsonl", [{"question": "hi", "answer": "a"}, {"question": "yo"}])

    code, _, err = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert err.startswith("lmc: error: data.jsonl: record 2: missing the expected 'answer'")
    assert fake.requests == []


def test_a_record_without_an_input_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("data.jsonl", [{"answer": "a"}])

    code, _, err = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert "data.jsonl: record 1: missing 'question'" in err


def test_missing_data_exits_2(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lmc_cli(capsys, "eval", "qa_metric.lmp", "--data", "gone.jsonl")

    assert code == EXIT_BAD_INPUT
    assert err == "lmc: error: gone.jsonl: no such file\n"


def test_a_bad_artifact_exits_2_with_one_line(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("qa.json").write_text('{"schema": "lmc-artifact", "version": 99}', encoding="utf-8")

    code, _, err = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl")

    assert code == EXIT_BAD_INPUT
    assert err == (
        "lmc: error: qa.json: written by lmc with artifact version 99; this lmc reads version 2: "
        "re-run lmc compile\n"
    )


def test_asking_an_artifact_for_another_program_exits_2(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_compiled("qa.json", QA_WITH_METRIC, None)

    code, _, err = lmc_cli(capsys, "eval", "qa.json", "--data", "data.jsonl", "--program", "RAG")

    assert code == EXIT_BAD_INPUT
    assert "the artifact holds program 'QA', not 'RAG'" in err


def test_concurrency_below_one_exits_2(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", "qa_metric.lmp", "--data", "data.jsonl", "--concurrency", "0"])

    assert exited.value.code == EXIT_BAD_INPUT
    assert (
        "argument --concurrency: expected a whole number of 1 or more, found '0'"
        in capsys.readouterr().err
    )
