"""`lmc compile` as users and scripts see it: the artifact it writes and what it prints, how that
artifact runs and scores, bad input (exit 2, one line, no artifact), the train/dev split, and
interrupted compiles with `--resume`.

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM` that
answers question `qN` with `aN` only when the prompt carries demos (else `no idea`).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from programs import QA, QA_WITH_METRIC

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from lmc.compiler.program import load, loads
from lmc.ir.graph import Demo, StepParams
from lmc.runtime.data import load_dataset, split

WROTE = re.compile(
    r"^wrote (?P<path>\S+): dev (?P<label>\S+) (?P<before>[0-9.]+) -> (?P<after>[0-9.]+) "
    r"on (?P<examples>\d+) examples, (?P<calls>\d+) LM calls, \d+s$"
)

Reply = Callable[[LMRequest], str]


def read_artifact(path: str) -> SimpleNamespace:
    """An artifact file as written: its JSON metadata, its program text, and the program read."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    kept = {key: data[key] for key in ("passes", "datasets", "metric", "lm", "backend")}
    return SimpleNamespace(**kept, text=data["program"], program=load(path).ir)


def question_of(request: LMRequest) -> str:
    """The question of the request's last user message that asks one (demos come before it)."""
    asked = [m.content for m in request.messages if m.content.startswith("question:\n")]
    return asked[-1].split("\n", 1)[1].split("\n\n", 1)[0]


def has_demos(request: LMRequest) -> bool:
    return len(request.messages) > 2


def right_with_demos(request: LMRequest) -> str:
    question = question_of(request)
    return json.dumps({"answer": "a" + question[1:] if has_demos(request) else "no idea"})


def use_lm(monkeypatch: pytest.MonkeyPatch, reply: Reply) -> FakeLM:
    """A fresh `FakeLM` for every `--lm` (and the default model) from now on."""
    lm = FakeLM(reply, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    return lm


def records(*numbers: int) -> list[dict[str, Any]]:
    return [{"question": f"q{n}", "answer": f"a{n}"} for n in numbers]


def write_records(path: str, items: list[dict[str, Any]]) -> None:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("qa_metric.lmp").write_text(QA_WITH_METRIC, encoding="utf-8")
    write_records("t.jsonl", records(0, 1, 2, 3))
    write_records("d.jsonl", records(*range(10, 15)))  # five: the fewest a gain can hold on
    return use_lm(monkeypatch, right_with_demos)


def lmc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `lmc` command; never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def compile_qa(
    capsys: pytest.CaptureFixture[str], *extra: str, program: str = "qa_metric.lmp"
) -> tuple[int, str, str]:
    return lmc(
        capsys,
        "compile",
        program,
        "--train",
        "t.jsonl",
        "--dev",
        "d.jsonl",
        "-o",
        "out.json",
        *extra,
    )


def wrote(out: str) -> dict[str, str]:
    match = WROTE.match(out.splitlines()[-1])
    assert match is not None, out
    return match.groupdict()


def sha(path: str) -> str:
    return load_dataset(Path(path), loads(QA).inputs).sha256


def checkpoints(cache: Path) -> list[Path]:
    folder = cache / "checkpoints"
    return sorted(folder.iterdir()) if folder.exists() else []


def the_checkpoint(cache: Path) -> dict[str, Any]:
    """The one checkpoint an interrupted compile left, read."""
    (saved,) = checkpoints(cache)
    data: dict[str, Any] = json.loads(saved.read_text(encoding="utf-8"))
    return data


# a compile ---------------------------------------------------------------------------------------


def test_compile_writes_the_artifact_and_says_what_it_bought(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = compile_qa(capsys)

    assert code == EXIT_OK
    assert out.count("\n") == 1
    summary = wrote(out)
    assert summary["path"] == "out.json"
    assert summary["label"] == "exact_match(answer)"
    assert (summary["before"], summary["after"]) == ("0.000", "1.000")
    assert summary["examples"] == "5"
    assert int(summary["calls"]) > 0
    assert err.startswith(
        "  the default pipeline: dead-steps,dedupe-steps,bootstrap-demos{candidates=4,"
        "max_train=16},dynamic-demos,prune-demos\nprojected LM calls: baseline on dev ≤5, "
    )
    assert (
        "bootstrap-demos: dev exact_match(answer) 0.000 -> 1.000 (gain +1.000 [+1.000, +1.000]), "
        in err
    )


def test_the_artifact_holds_the_program_pass_log_datasets_and_metric(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_qa(capsys)

    artifact = read_artifact("out.json")

    assert artifact.text.startswith("signature ")  # the program in its text form
    assert [p["name"] for p in artifact.passes] == [
        "dead-steps",
        "dedupe-steps",
        "bootstrap-demos",
        "dynamic-demos",
        "prune-demos",
    ]
    for record in artifact.passes:
        assert {
            "options",
            "metric_before",
            "metric_after",
            "calls",
            "cached",
            "prompt_tokens",
            "completion_tokens",
            "seconds",
            "calls_per_run",
            "notes",
        } <= set(record)
    assert artifact.passes[0]["metric_before"] == 0.0
    assert artifact.passes[-1]["metric_after"] == 1.0
    assert artifact.datasets == {"train": sha("t.jsonl"), "dev": sha("d.jsonl")}
    assert artifact.metric == {"name": "exact_match", "field": "answer"}
    assert artifact.lm == "local"  # the model as named (no --lm: the default), to run it again
    assert artifact.backend == "json"
    unlearned = artifact.program.copy()
    unlearned.params = {key: StepParams() for key in unlearned.params}
    assert unlearned == loads(QA_WITH_METRIC).ir
    learned = artifact.program.params["gen"].demos
    assert learned
    assert set(learned) <= {Demo((("question", f"q{n}"), ("answer", f"a{n}"))) for n in range(4)}


def test_the_pass_log_accounts_for_every_lm_call(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_qa(capsys)

    passes = read_artifact("out.json").passes

    baseline = 5  # one run per dev example, before the first pass
    assert baseline + sum(p["calls"] for p in passes) == len(fake.requests)


def test_the_summary_counts_every_lm_call_of_the_compile(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = compile_qa(capsys)

    assert int(wrote(out)["calls"]) == len(fake.requests)


def test_the_artifact_runs_with_the_learned_demos(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_qa(capsys)

    code, out, _ = lmc(capsys, "run", "out.json", "--input", "question=q42")

    assert code == EXIT_OK
    assert out == "answer: a42\n"
    assert has_demos(fake.requests[-1])


def test_eval_scores_the_artifact_with_its_metric(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_qa(capsys)

    code, out, _ = lmc(capsys, "eval", "out.json", "--data", "d.jsonl")

    assert code == EXIT_OK
    assert out.splitlines()[-1].startswith("metric exact_match(answer) = 1.000 on 5 examples (")


def test_the_metric_option_serves_a_file_that_declares_none(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = compile_qa(capsys, "--metric", "contains(answer)", program="qa.lmp")

    assert code == EXIT_OK
    assert wrote(out)["label"] == "contains(answer)"
    assert read_artifact("out.json").metric == {"name": "contains", "field": "answer"}


def test_a_python_metric_compiles_the_program(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    package = Path("lmc_test_cli_metrics")
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "scoring.py").write_text(
        "def same(example, prediction):\n    return example.answer == prediction.answer\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(Path.cwd()))
    monkeypatch.delitem(sys.modules, "lmc_test_cli_metrics.scoring", raising=False)

    code, out, _ = compile_qa(
        capsys, "--metric", "lmc_test_cli_metrics.scoring:same", program="qa.lmp"
    )

    assert code == EXIT_OK
    assert wrote(out)["after"] == "1.000"
    assert read_artifact("out.json").metric == {
        "name": "lmc_test_cli_metrics.scoring:same",
        "field": None,
    }


def test_the_pipeline_option_chooses_the_passes(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = compile_qa(capsys, "-p", "bootstrap-demos{max_demos=2,candidates=1}")

    assert code == EXIT_OK
    (record,) = read_artifact("out.json").passes
    assert record["name"] == "bootstrap-demos"
    assert record["options"]["max_demos"] == 2
    assert record["options"]["candidates"] == 1
    assert len(read_artifact("out.json").program.params["gen"].demos) == 2


def test_the_default_artifact_is_named_after_the_program(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = lmc(capsys, "compile", "qa_metric.lmp", "--train", "t.jsonl", "--dev", "d.jsonl")

    assert code == EXIT_OK
    assert wrote(out)["path"] == "QA.compiled.json"
    assert read_artifact("QA.compiled.json").program.params["gen"].demos


def test_a_compile_within_its_budget_makes_no_more_calls(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = compile_qa(capsys, "-p", "bootstrap-demos,prune-demos", "--budget-calls", "54")

    assert code == EXIT_OK
    assert "at most 54 (budget 54)" in err
    assert len(fake.requests) <= 54
    assert read_artifact("out.json").program.params["gen"].demos


def test_a_finished_compile_leaves_no_checkpoint(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    compile_qa(capsys)

    assert checkpoints(isolated_cache) == []


# bad input: exit 2, one line, no artifact, no LM call --------------------------------------------


def assert_refused(code: int, out: str, err: str, fake: FakeLM, message: str) -> None:
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err == f"lmc: error: {message}\n"
    assert not Path("out.json").exists()
    assert fake.requests == []


def test_an_unknown_pass_is_refused(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = compile_qa(capsys, "-p", "bootstrap-demos,prune")

    assert_refused(
        code,
        out,
        err,
        fake,
        "unknown pass 'prune'; expected 'bootstrap-demos', 'dead-steps', 'dedupe-steps', "
        "'dynamic-demos', 'ensemble', 'fuse-steps', 'instruction-search', 'joint-search' or "
        "'prune-demos'; did you mean 'prune-demos'?",
    )


def test_an_unknown_pass_option_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = compile_qa(capsys, "-p", "bootstrap-demos{demos=2}")

    assert_refused(
        code,
        out,
        err,
        fake,
        "bootstrap-demos: unknown option 'demos'; its options are max_demos, candidates, "
        "max_train, labeled, threshold",
    )


@pytest.mark.parametrize("value", ["x", "-1"])
def test_a_bad_pass_option_value_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = compile_qa(capsys, "-p", f"bootstrap-demos{{max_demos={value}}}")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: bootstrap-demos: option max_demos expects ")
    assert err.endswith(f"; found '{value}'\n")
    assert err.count("\n") == 1
    assert not Path("out.json").exists()
    assert fake.requests == []


def test_bad_pipeline_syntax_is_refused(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = compile_qa(capsys, "-p", "bootstrap-demos{max_demos=2")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("lmc: error: the options of bootstrap-demos opened at column 16 ")
    assert err.count("\n") == 1
    assert not Path("out.json").exists()


def test_no_metric_is_refused(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lmc(
        capsys, "compile", "qa.lmp", "--train", "t.jsonl", "--dev", "d.jsonl", "-o", "out.json"
    )

    assert_refused(
        code, out, err, fake, "no metric: pass --metric NAME(FIELD) or declare one in the file"
    )


def test_a_metric_on_a_field_that_is_not_an_output_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = compile_qa(capsys, "--metric", "exact_match(question)")

    assert_refused(
        code, out, err, fake, "metric exact_match(question): the program has no output 'question'"
    )


def test_a_metric_on_a_field_neither_output_nor_in_the_data_names_the_outputs(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = compile_qa(capsys, "--metric", "exact_match(label)")

    assert_refused(
        code, out, err, fake, "metric exact_match(label): the program has no output 'label'"
    )


def test_an_unknown_metric_is_refused(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = compile_qa(capsys, "--metric", "bleu(answer)")

    assert_refused(
        code,
        out,
        err,
        fake,
        "unknown metric 'bleu'; expected 'contains', 'exact_match', 'f1' or 'numeric'",
    )


def test_a_python_metric_that_cannot_be_imported_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = compile_qa(capsys, "--metric", "lmc_no_such_module:score")

    assert code == EXIT_BAD_INPUT
    assert err.startswith("lmc: error: cannot import lmc_no_such_module: ")
    assert err.count("\n") == 1
    assert not Path("out.json").exists()


@pytest.mark.parametrize(
    ("source", "target", "said"),
    [
        (
            "def score(example, prediction:\n",
            "score",
            "importing {module} for metric {module}:score raised SyntaxError: '(' was never "
            "closed ({module}.py, line 1)",
        ),
        # Said "has no function 'score'" before: the AttributeError came from the module's code.
        (
            "settings = None\nTOLERANCE = settings.tolerance\n",
            "score",
            "importing {module} for metric {module}:score raised AttributeError: 'NoneType' "
            "object has no attribute 'tolerance'",
        ),
        (
            "def score(example, prediction):\n    return 1.0\n",
            "scored",
            "{module} has no function 'scored'",
        ),
        (
            "import sys\nsys.exit(4)\n",
            "score",
            "importing {module} for metric {module}:score called sys.exit(4)",
        ),
    ],
    ids=["syntax-error", "attribute-error-while-imported", "missing-function", "sys-exit"],
)
def test_a_python_metric_that_cannot_be_had_is_refused_saying_why(
    source: str,
    target: str,
    said: str,
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    module = "compile_test_metric_" + request.node.callspec.id.replace("-", "_")
    Path(f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(Path.cwd()))
    monkeypatch.delitem(sys.modules, module, raising=False)

    code, out, err = compile_qa(capsys, "--metric", f"{module}:{target}")

    assert_refused(code, out, err, fake, said.format(module=module))


@pytest.mark.parametrize(
    ("fails", "said"),
    [
        ("raise KeyError('label')", "raised KeyError: 'label'"),
        # A metric that calls sys.exit fails its example; it does not end the compile.
        ("sys.exit(3)", "called sys.exit(3)"),
    ],
    ids=["raises", "sys-exit"],
)
def test_a_python_metric_that_fails_on_one_example_scores_it_0_and_the_compile_finishes(
    fails: str,
    said: str,
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = Path("lmc_test_cli_bad_metrics")
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "scoring.py").write_text(
        "import sys\n\n"
        "def same_but_q11(example, prediction):\n"
        "    if example.question == 'q11':\n"
        f"        {fails}\n"
        "    return example.answer == prediction.answer\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(Path.cwd()))
    for module in ("lmc_test_cli_bad_metrics", "lmc_test_cli_bad_metrics.scoring"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    metric = "lmc_test_cli_bad_metrics.scoring:same_but_q11"
    write_records("d.jsonl", records(*range(10, 16)))  # five others, for a gain to hold on

    code, out, err = compile_qa(capsys, "--metric", metric)

    # The LM calls spent are not thrown away: dev record 2 (q11) fails, as a failed run would.
    assert code == EXIT_OK
    assert (wrote(out)["before"], wrote(out)["after"]) == ("0.000", "0.833")
    assert err.count(f"  metric {metric} {said}; each example it fails on scores 0\n") == 1
    misses = json.loads(Path("out.json").read_text(encoding="utf-8"))["misses"]
    assert [(m["record"], m["predicted"], m["error"]) for m in misses] == [
        (2, {"answer": "a11"}, f"metric {metric} {said}")
    ]


def test_half_an_escaped_emoji_in_a_reply_still_makes_a_readable_artifact(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `\ud83d` alone is valid JSON, but no UTF-8 file can hold it; the artifact keeps the dev
    # misses' predictions, so a compile whose model wrote one could not be saved.
    use_lm(monkeypatch, lambda request: '{"answer": "smile \\ud83d"}')

    code, _, err = compile_qa(capsys, "-p", "dead-steps")

    assert code == EXIT_OK, err
    misses = json.loads(Path("out.json").read_text(encoding="utf-8"))["misses"]
    assert misses[0]["predicted"] == {"answer": "smile \ufffd"}
    assert lmc(capsys, "run", "out.json", "--input", "question=q")[0] == EXIT_OK  # it loads


def test_a_bad_train_record_is_refused_by_number(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("t.jsonl").write_text(
        '{"question": "q0", "answer": "a0"}\n'
        '{"question": "q1", "answer": "a1"}\n'
        '{"question": "q2", "answer": \n',
        encoding="utf-8",
    )

    code, out, err = compile_qa(capsys)

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith(
        "lmc: error: t.jsonl: record 3: expected a JSON object, found invalid JSON"
    )
    assert err.count("\n") == 1
    assert not Path("out.json").exists()
    assert fake.requests == []


def test_a_train_record_with_nan_is_refused_by_number(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    # Python's JSON reader takes NaN (pandas writes it for a missing label); kept as a demo,
    # it would make an artifact no reader takes, after the whole compile.
    Path("t.jsonl").write_text(
        '{"question": "q0", "answer": "a0"}\n{"question": "q1", "answer": NaN}\n',
        encoding="utf-8",
    )

    code, out, err = compile_qa(capsys)

    assert_refused(
        code,
        out,
        err,
        fake,
        "t.jsonl: record 2: invalid JSON (NaN is not a JSON value; a number is finite, or write "
        "null)",
    )


def test_a_train_record_without_the_expected_field_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("t.jsonl", [*records(0), {"question": "q1"}, *records(2)])

    code, out, err = compile_qa(capsys)

    assert_refused(
        code,
        out,
        err,
        fake,
        "t.jsonl: record 2: missing the expected 'answer' that the metric compares with the "
        "program's output",
    )


def test_a_train_record_without_an_input_is_refused(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("t.jsonl", [*records(0), {"answer": "a1"}])

    code, out, err = compile_qa(capsys)

    assert_refused(
        code,
        out,
        err,
        fake,
        "t.jsonl: record 2: missing 'question'; the program takes question: str",
    )


def test_a_bad_dev_record_is_refused_by_number(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("d.jsonl").write_text('["q10", "a10"]\n', encoding="utf-8")

    code, out, err = compile_qa(capsys)

    assert_refused(code, out, err, fake, "d.jsonl: record 1: expected a JSON object, found list")


def test_a_missing_train_file_is_refused(fake: FakeLM, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lmc(
        capsys,
        "compile",
        "qa_metric.lmp",
        "--train",
        "nope.jsonl",
        "--dev",
        "d.jsonl",
        "-o",
        "out.json",
    )

    assert_refused(code, out, err, fake, "nope.jsonl: no such file")


def test_a_budget_below_the_projection_is_refused_listing_it(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = compile_qa(capsys, "--budget-calls", "5")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    error_lines = [line for line in err.splitlines() if line.startswith("lmc: error: ")]
    assert error_lines == [
        "lmc: error: even the leanest default pipeline may need up to 14 LM calls (baseline on "
        "dev 5, dead-steps 0, dedupe-steps 0, bootstrap-demos 9), over the budget of 5: raise "
        "--budget-calls, or a smaller --dev"
    ]
    assert err.splitlines()[-1] == error_lines[0]
    assert not Path("out.json").exists()
    assert fake.requests == []


def test_a_budget_spent_before_any_result_exits_1(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every dev run needs a repair call: the baseline alone needs 10 calls of the 5 allowed.
    use_lm(
        monkeypatch,
        lambda request: json.dumps({"answer": "no idea"}) if has_demos(request) else "garbage",
    )

    code, out, err = compile_qa(capsys, "-p", "dead-steps", "--budget-calls", "5")

    assert code == EXIT_FAILED
    assert out == ""
    assert err.splitlines()[-1].startswith("lmc: error: the budget of 5 LM calls is spent")
    assert not Path("out.json").exists()


# the train/dev split -----------------------------------------------------------------------------


def split_hashes(capsys: pytest.CaptureFixture[str], seed: int, output: str) -> dict[str, str]:
    code, out, _ = lmc(
        capsys,
        "compile",
        "qa_metric.lmp",
        "--train",
        "all.jsonl",
        "--seed",
        str(seed),
        "-p",
        "bootstrap-demos{candidates=1}",
        "-o",
        output,
    )
    assert code == EXIT_OK
    assert wrote(out)["examples"] == "5"
    return read_artifact(output).datasets


def test_without_dev_the_train_set_is_split_by_seed(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records("all.jsonl", records(*range(10)))

    zero = split_hashes(capsys, 0, "zero.json")
    again = split_hashes(capsys, 0, "again.json")
    one = split_hashes(capsys, 1, "one.json")

    assert zero == again
    assert zero["dev"] != one["dev"]
    assert zero["train"] != one["train"]
    for seed, hashes in ((0, zero), (1, one)):
        train, dev = split(load_dataset(Path("all.jsonl"), loads(QA).inputs), seed)
        assert hashes == {"train": train.sha256, "dev": dev.sha256}


# interrupted compiles and --resume ---------------------------------------------------------------


def interrupt_once(when: Callable[[LMRequest], bool]) -> Reply:
    """`right_with_demos`, except that the first request `when` picks is a Ctrl-C."""
    lock, interrupted = threading.Lock(), [False]

    def reply(request: LMRequest) -> str:
        with lock:
            if not interrupted[0] and when(request):
                interrupted[0] = True
                raise KeyboardInterrupt
        return right_with_demos(request)

    return reply


def test_an_interrupted_compile_writes_no_artifact(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupting = use_lm(
        monkeypatch, interrupt_once(lambda request: len(interrupting.requests) > 6)
    )

    code, out, err = compile_qa(capsys)

    assert code == 130
    assert "lmc: interrupted" in err
    assert out == ""
    assert not Path("out.json").exists()
    assert sorted(p.name for p in Path.cwd().iterdir() if p.name != "lmc-cache") == [
        "d.jsonl",
        "qa.lmp",
        "qa_metric.lmp",
        "t.jsonl",
    ]


PIPELINE = "bootstrap-demos{max_demos=2},prune-demos"


def interrupted_after(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, asked: int, *argv: str
) -> FakeLM:
    """A compile with `argv` whose LM is interrupted once it has been asked `asked` times."""
    interrupting = use_lm(
        monkeypatch, interrupt_once(lambda request: len(interrupting.requests) > asked)
    )
    assert compile_qa(capsys, *argv)[0] == 130
    return interrupting


def interrupted_in_prune_demos(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> FakeLM:
    """A compile whose LM is interrupted in prune-demos: the first prompt with one demo (every
    demo set bootstrap-demos tries has two)."""

    lm = use_lm(monkeypatch, interrupt_once(lambda request: len(request.messages) == 4))
    code, _, _ = compile_qa(capsys, "-p", PIPELINE)
    assert code == 130
    assert not Path("out.json").exists()
    return lm


def test_resume_skips_the_passes_that_had_finished(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    first = interrupted_in_prune_demos(capsys, monkeypatch)
    finished = the_checkpoint(isolated_cache)["passes"]
    assert [p["name"] for p in finished] == ["bootstrap-demos"]
    second = use_lm(monkeypatch, right_with_demos)

    code, out, err = compile_qa(capsys, "-p", PIPELINE, "--resume")

    assert code == EXIT_OK
    assert "resuming after bootstrap-demos" in err
    assert "\nbootstrap-demos: dev " not in err  # not run again
    passes = read_artifact("out.json").passes
    assert passes[0] == finished[0]  # its record is reused
    assert [p["name"] for p in passes] == ["bootstrap-demos", "prune-demos"]
    assert wrote(out)["before"] == "0.000"
    # Only prune-demos reached the LM: prompts with one demo, none asked before.
    assert second.requests
    assert all(len(r.messages) == 4 for r in second.requests)
    answered = [r for r in first.requests if len(r.messages) != 4]  # the 4s were interrupted
    asked_before = {json.dumps(r.to_json(), sort_keys=True) for r in answered}
    assert not any(json.dumps(r.to_json(), sort_keys=True) in asked_before for r in second.requests)
    assert checkpoints(isolated_cache) == []


def test_a_resumed_compile_counts_the_calls_made_before_in_its_budget(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    first = interrupted_in_prune_demos(capsys, monkeypatch)
    saved = the_checkpoint(isolated_cache)
    made_before, finished = saved["calls"], saved["finished_calls"]
    # the baseline's, bootstrap-demos' and prune-demos' up to the interrupt (in this process,
    # worker threads still running may ask the model after the checkpoint was saved)
    assert saved["passes"][0]["calls"] < finished < made_before <= len(first.requests)
    second = use_lm(monkeypatch, right_with_demos)
    resume = ("-p", PIPELINE, "--resume", "--budget-calls")

    code, _, err = compile_qa(capsys, *resume, str(finished))

    assert code == EXIT_BAD_INPUT  # prune-demos' projection no longer fits
    assert f"spent by the finished passes {finished}, prune-demos " in err
    assert not second.requests

    budget = 54  # the whole pipeline's projection, as in the test of a compile within its budget
    code, _, err = compile_qa(capsys, *resume, str(budget))

    assert code == EXIT_OK
    assert (
        f"resuming after bootstrap-demos ({made_before} LM calls made before, counted in the budget)"
        in err
    )
    assert made_before + len(second.requests) <= budget


def test_a_compile_interrupted_before_any_pass_finished_resumes_counting_its_calls(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    interrupting = interrupted_after(capsys, monkeypatch, 6, "-p", PIPELINE)
    use_lm(monkeypatch, right_with_demos)

    code, _, err = compile_qa(capsys, "-p", PIPELINE, "--resume")

    assert code == EXIT_OK
    counted = re.search(r"resuming after no finished pass \((\d+) LM calls made before", err)
    assert counted is not None
    assert 0 < int(counted[1]) <= len(interrupting.requests)
    assert "budget" not in err  # none was given
    assert checkpoints(isolated_cache) == []


def test_a_compile_interrupted_in_a_pass_resumes_within_its_projection(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    # A budget of exactly the projection; the calls bootstrap-demos made before the interrupt
    # come back from the cache, so they must not be counted twice against it.
    refused = compile_qa(capsys, "-p", PIPELINE, "--budget-calls", "1")[2]
    projected = re.search(r"may need up to (\d+) LM calls", refused)
    assert projected is not None
    budget = ("-p", PIPELINE, "--budget-calls", projected[1])
    interrupted_after(capsys, monkeypatch, 6, *budget)
    made_before = the_checkpoint(isolated_cache)["calls"]
    second = use_lm(monkeypatch, right_with_demos)

    code, _, err = compile_qa(capsys, *budget, "--resume")

    assert code == EXIT_OK, err
    assert made_before + len(second.requests) <= int(projected[1])


def test_a_default_compile_interrupted_while_fitting_counts_its_calls_on_resuming(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_cache: Path,
) -> None:
    # The default pipeline scores the baseline to fit itself to the budget, before it knows its
    # passes: a stop there is kept too, and the budget binds both attempts together.
    interrupting = interrupted_after(capsys, monkeypatch, 3, "--budget-calls", "40")
    made_before = the_checkpoint(isolated_cache)["calls"]
    assert 0 < made_before <= len(interrupting.requests)
    second = use_lm(monkeypatch, right_with_demos)

    code, _, err = compile_qa(capsys, "--budget-calls", "40", "--resume")

    assert code == EXIT_OK, err
    assert f"resuming after no finished pass ({made_before} LM calls made before, counted" in err
    assert made_before + len(second.requests) <= 40
    assert checkpoints(isolated_cache) == []


def test_a_compile_refused_before_any_call_leaves_no_checkpoint(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    assert compile_qa(capsys, "-p", PIPELINE, "--budget-calls", "5")[0] == EXIT_BAD_INPUT

    assert checkpoints(isolated_cache) == []


def test_resume_keeps_the_program_the_finished_passes_left(
    fake: FakeLM,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interrupted_in_prune_demos(capsys, monkeypatch)
    use_lm(monkeypatch, right_with_demos)

    compile_qa(capsys, "-p", PIPELINE, "--resume")

    # prune-demos started from bootstrap-demos' two demos and kept the one that still helps
    artifact = read_artifact("out.json")
    assert len(artifact.program.params["gen"].demos) == 1
    assert artifact.passes[-1]["metric_after"] == 1.0


def test_without_resume_an_interrupted_compile_starts_over_from_the_cache(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted_in_prune_demos(capsys, monkeypatch)
    second = use_lm(monkeypatch, right_with_demos)

    code, _, err = compile_qa(capsys, "-p", PIPELINE)

    assert code == EXIT_OK
    assert "resuming" not in err
    bootstrap = read_artifact("out.json").passes[0]
    assert bootstrap["calls"] == 0  # every call it makes is in the cache
    assert bootstrap["cached"] > 0
    assert all(len(r.messages) == 4 for r in second.requests)


def test_resume_without_a_checkpoint_starts_from_the_beginning(
    fake: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = compile_qa(capsys, "--resume")

    assert code == EXIT_OK
    assert "no checkpoint of this compile: starting from the beginning" in err
    assert [p["name"] for p in read_artifact("out.json").passes] == [
        "dead-steps",
        "dedupe-steps",
        "bootstrap-demos",
        "dynamic-demos",
        "prune-demos",
    ]


def test_a_checkpoint_is_not_resumed_once_its_python_metric_was_edited(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = Path("lmc_test_resume_metric.py")
    scoring.write_text(
        "def same(example, prediction):\n    return example.answer == prediction.answer\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(Path.cwd()))
    given = ("--metric", "lmc_test_resume_metric:same", "-p", PIPELINE)
    use_lm(monkeypatch, interrupt_once(lambda request: len(request.messages) == 4))
    monkeypatch.delitem(sys.modules, "lmc_test_resume_metric", raising=False)
    assert compile_qa(capsys, *given, program="qa.lmp")[0] == 130
    scoring.write_text(
        "def same(example, prediction):\n    return example.answer in prediction.answer\n",
        encoding="utf-8",
    )
    use_lm(monkeypatch, right_with_demos)
    monkeypatch.delitem(sys.modules, "lmc_test_resume_metric")

    code, _, err = compile_qa(capsys, *given, "--resume", program="qa.lmp")

    assert code == EXIT_OK
    assert "no checkpoint of this compile" in err


def test_a_checkpoint_is_not_resumed_by_a_different_compile(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted_in_prune_demos(capsys, monkeypatch)
    use_lm(monkeypatch, right_with_demos)

    code, _, err = compile_qa(capsys, "-p", PIPELINE, "--resume", "--seed", "1")

    assert code == EXIT_OK
    assert "no checkpoint of this compile" in err


def test_a_compiled_program_runs_on_the_model_it_was_compiled_for(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = "http://127.0.0.1:8000/v1"
    code, _, _ = compile_qa(capsys, "--lm", "openai/served", "--api-base", server)
    assert code == 0
    asked: list[tuple[str, str | None]] = []

    def open_lm(model: str, api_base: str | None = None) -> FakeLM:
        asked.append((model, api_base))
        return fake

    monkeypatch.setattr("lmc.runtime.context.open_lm", open_lm)
    run = ("run", "out.json", "--input", "question=q7")
    assert lmc(capsys, *run)[0] == 0
    assert lmc(capsys, *run, "--api-base", "http://127.0.0.1:9000/v1")[0] == 0
    assert lmc(capsys, *run, "--lm", "local")[0] == 0
    assert asked == [
        # On the server it was compiled against: without it, `openai/served` would go to the
        # hosted provider of that name, with the user's key.
        ("openai/served", server),
        ("openai/served", "http://127.0.0.1:9000/v1"),
        ("local", None),
    ]


def test_a_compiled_program_runs_on_its_model_file_from_any_folder(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("models").mkdir()
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: fake)
    assert compile_qa(capsys, "--lm", "local:models/m.gguf")[0] == 0

    recorded = json.loads(Path("out.json").read_text(encoding="utf-8"))["lm"]

    assert recorded == "local:" + str(Path.cwd() / "models" / "m.gguf")


def test_a_compile_whose_every_dev_run_fails_stops_and_keeps_the_artifact_there(
    fake: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An LM that cannot be reached fails every run the same way: a compile that measured nothing
    # must not replace the artifact the user already has with one that learned nothing.
    Path("out.json").write_text("the artifact of an earlier compile", encoding="utf-8")
    use_lm(monkeypatch, lambda request: "not a reply anyone can use")

    code, out, err = compile_qa(capsys)

    assert code == EXIT_FAILED
    assert out == ""
    last = err.splitlines()[-1]
    assert last.startswith(
        "lmc: error: every one of the 5 dev examples failed before any pass ran, so nothing can "
        "be measured and nothing was compiled; the first: "
    )
    assert Path("out.json").read_text(encoding="utf-8") == "the artifact of an earlier compile"
