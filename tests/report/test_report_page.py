"""The compile and eval reports as a user reads them: what each section shows, taken from the
artifact or the evaluation, and what they do with bad input. No browser here (see
test_report_browser.py) and no real model: every LM is a `FakeLM`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import (
    CLASSIFY,
    QA,
    Compiled,
    Elements,
    qa_reply,
    sentiment_reply,
    use_lm,
    write_jsonl,
)

from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main


def artifact_of(compiled: Compiled) -> dict:
    return json.loads(compiled.artifact.read_text(encoding="utf-8"))


def page(path: Path) -> Elements:
    return Elements(path.read_text(encoding="utf-8"))


def test_the_pass_table_has_a_row_per_pass_of_the_artifacts_log(compiled: Compiled) -> None:
    log = artifact_of(compiled)["passes"]
    rows = page(compiled.report).all("tr", within="pass-table", cls="pass")

    assert [row.attrs["data-pass"] for row in rows] == [p["name"] for p in log]
    assert [p["name"] for p in log] == ["bootstrap-demos", "instruction-search", "prune-demos"]


def test_the_chart_draws_every_candidate_each_pass_scored(compiled: Compiled) -> None:
    candidates = [c for p in artifact_of(compiled)["passes"] for c in p["candidates"]]
    shown = page(compiled.report)

    kept = shown.all("use", within="candidates-kept")
    dropped = shown.all("use", within="candidates-dropped")
    assert len(kept) == sum(c["kept"] for c in candidates) > 0
    assert len(dropped) == sum(not c["kept"] for c in candidates) > 0
    # The program's line: the baseline, then the result of each pass.
    assert len(shown.all("use", within="program-after-passes")) == 4


def test_candidates_record_their_calls_score_and_whether_they_were_kept(
    compiled: Compiled,
) -> None:
    bootstrap = artifact_of(compiled)["passes"][0]

    assert [c["label"] for c in bootstrap["candidates"]] == [
        "demo set 3",
        "demo set 2",
        "demo set 1",
    ]
    calls = [c["calls"] for c in bootstrap["candidates"]]
    assert calls == sorted(calls)
    assert calls[-1] <= bootstrap["calls"]
    assert [c["kept"] for c in bootstrap["candidates"]] == [False, False, True]
    assert bootstrap["candidates"][0]["examples"] == 8  # dropped after the first share of dev


def test_every_instruction_tried_is_listed_with_its_score(compiled: Compiled) -> None:
    search = artifact_of(compiled)["passes"][1]
    rows = page(compiled.report).all("tr", within="instructions")[1:]  # after the heading row

    tried = [c["detail"] for c in search["candidates"]]
    assert len(rows) == len(tried) == 3
    assert all(text.startswith("Answer in a few words.") for text in tried)
    assert [row.text for row in page(compiled.report).all("td", within="instructions")][2] == tried[
        0
    ]


def test_each_step_shows_its_instruction_demos_and_a_rendered_prompt(compiled: Compiled) -> None:
    text = artifact_of(compiled)["program"]
    shown = page(compiled.report)

    (card,) = shown.all("div", cls="step")
    assert card.attrs["data-step"] == "gen"
    demos = shown.all("pre", within="steps", cls="demo")
    assert len(demos) == text.count("demo {")
    first_demo_question = demos[0].text.split('"')[1]
    messages = [m.text for m in shown.all("pre", within="steps") if m not in demos]
    # The backend's own lowering: the system prompt, the demo's turn, and the call's inputs.
    assert messages[0].startswith("Given the fields `question`, produce the fields `answer`.")
    assert (
        messages[-2] == f'question:\n{first_demo_question}\n\nReply with the JSON object: "answer".'
    )
    assert json.loads(messages[-1])["required"] == ["answer"]  # the reply's schema


def test_the_dev_examples_still_wrong_show_expected_beside_predicted(compiled: Compiled) -> None:
    misses = artifact_of(compiled)["misses"]
    rows = page(compiled.report).all("tr", within="misses", cls="miss")

    assert [m["record"] for m in misses] == [4, 8, 12, 16]  # q16, q20, q24, q28
    assert misses[0]["expected"] == {"answer": "a16"}
    assert misses[0]["predicted"] == {"answer": "no idea"}
    assert len(rows) == len(misses)


def test_the_page_names_model_backend_data_and_command(compiled: Compiled) -> None:
    artifact = artifact_of(compiled)
    text = compiled.report.read_text(encoding="utf-8")

    assert artifact["command"].startswith("lmc compile qa.lmp --train train.jsonl")
    assert all(digest in text for digest in artifact["datasets"].values())
    for fact in ("model", "backend", "command", "dev data sha256", "train data sha256"):
        assert f"<dt>{fact}</dt>" in text


def test_the_page_loads_nothing(compiled: Compiled) -> None:
    shown = page(compiled.report)

    assert [e.tag for e in shown.found if e.tag in ("script", "link", "img", "iframe")] == []
    for element in shown.found:
        for name in ("src", "href", "xlink:href"):
            assert element.attrs.get(name, "#").startswith("#"), element


def test_lmc_report_writes_the_page_compile_wrote(
    compiled: Compiled, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "qa.json", "-o", "again.html"]) == EXIT_OK

    assert capsys.readouterr().out.endswith("wrote again.html\n")
    assert (compiled.folder / "again.html").read_bytes() == compiled.report.read_bytes()


def test_an_artifact_from_before_candidates_and_misses_still_reports(compiled: Compiled) -> None:
    old = artifact_of(compiled)
    for record in old["passes"]:
        del record["candidates"]
    del old["misses"], old["command"]
    compiled.artifact.write_text(json.dumps(old), encoding="utf-8")

    assert main(["report", "qa.json", "-o", "old.html"]) == EXIT_OK
    text = (compiled.folder / "old.html").read_text(encoding="utf-8")
    assert "written before lmc recorded the candidates" in text
    assert "Not recorded: the compile did not score its final program itself" in text
    assert "not recorded (compiled from Python)" in text


def test_a_program_that_was_never_compiled_reports_its_graph_and_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")

    assert main(["report", "qa.lmp"]) == EXIT_OK
    shown = page(tmp_path / "qa.report.html")
    assert shown.all("svg", within="graph")
    assert "{question}" in (tmp_path / "qa.report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "missing.json"], "lmc: error: missing.json: no such file\n"),
        (["report", "qa.lmp", "-o", "qa.lmp/r.html"], "lmc: error: qa.lmp/r.html: cannot write it"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")

    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_compile_checks_the_report_path_before_any_lm_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    lm = use_lm(monkeypatch, qa_reply)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("train.jsonl").write_text('{"question": "q1", "answer": "a1"}\n', encoding="utf-8")
    Path("taken").mkdir()

    argv = ["compile", "qa.lmp", "--train", "train.jsonl", "--metric", "exact_match(answer)"]
    assert main([*argv, "--report", "taken"]) == EXIT_BAD_INPUT
    assert "taken: cannot write it" in capsys.readouterr().err
    assert lm.requests == []


def test_the_eval_report_counts_expected_against_predicted_labels(evaluated: Path) -> None:
    shown = page(evaluated)

    header = [c.text for c in shown.all("th", within="confusion-table")]
    assert header[1:4] == ["pos", "neg", "neutral"]
    cells = [int(c.text) for c in shown.all("td", within="confusion-table")]
    # rows pos, neg, neutral; columns pos, neg, neutral: every neutral is taken for pos.
    assert cells == [2, 0, 0, 0, 1, 0, 1, 0, 0]


def test_the_eval_report_lists_every_example_and_the_slowest_and_costliest(
    evaluated: Path,
) -> None:
    shown = page(evaluated)

    examples = shown.all("tr", within="example-table", cls="example")
    assert [e.attrs["data-record"] for e in examples] == ["1", "2", "3", "4"]
    assert [e.attrs["class"].split()[1] for e in examples] == ["right", "right", "wrong", "right"]
    assert len(shown.all("tr", within="slowest-table", cls="example")) == 4
    assert len(shown.all("tr", within="costliest-table", cls="example")) == 4


def test_an_example_the_metric_failed_on_shows_its_prediction_and_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    use_lm(monkeypatch, sentiment_reply)
    Path("report_test_metric.py").write_text(
        "def label_unless_so(example, prediction):\n"
        "    if example.text.startswith('so'):\n"
        "        raise ValueError('no score for so')\n"
        "    return example.label == prediction.label\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "report_test_metric", raising=False)
    Path("sentiment.lmp").write_text(CLASSIFY, encoding="utf-8")
    write_jsonl(
        Path("data.jsonl"), [{"text": "good", "label": "pos"}, {"text": "so", "label": "pos"}]
    )
    metric = "report_test_metric:label_unless_so"

    command = ["eval", "sentiment.lmp", "--data", "data.jsonl", "--metric", metric]
    assert main([*command, "--report", "eval.html"]) == EXIT_FAILED  # the page is written first

    shown = page(tmp_path / "eval.html")
    # inputs, expected and predicted for each of the two examples: the prediction the metric
    # failed on is still shown, beside the metric's error
    assert len(shown.all("pre", within="example-table")) == 6
    failures = [e.text for e in shown.all("span", within="example-table", cls="bad")]
    assert failures == [f"failed: metric {metric} raised ValueError: no score for so"]
    summary = next(e for e in shown.found if e.attrs.get("id") == "summary")
    assert summary.text.endswith(", 1 failed.")
