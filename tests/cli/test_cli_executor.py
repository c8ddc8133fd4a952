"""`--executor`, `--ray-address` and `--workers` given wrongly: exit 2, one line, before any LM
call and without starting Ray. (Runs on a cluster are in tests/runtime/test_ray_executor.py.)"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from programs import QA

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, main
from lmc.runtime.worker import NotForWorkers, WorkerSpec


@pytest.fixture
def dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(lambda request: json.dumps({"answer": "x"}), identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("in.jsonl").write_text('{"question": "q"}\n', encoding="utf-8")
    return lm


def run_data(*options: str) -> list[str]:
    return ["run", "qa.lmp", "--data", "in.jsonl", *options]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_ray_missing_says_what_to_install(
    dataset: FakeLM, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lmc.runtime.ray_executor.ray_installed", lambda: False)

    assert main(run_data("--executor", "ray")) == EXIT_BAD_INPUT
    assert "pip install 'lmc[ray]'" in one_error_line(capsys)
    assert dataset.requests == []


@pytest.mark.parametrize("address", ["not an address", "http://head:6379", "head:port", "::"])
def test_a_malformed_ray_address_is_bad_input(
    dataset: FakeLM, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    assert main(run_data("--executor", "ray", "--ray-address", address)) == EXIT_BAD_INPUT
    line = one_error_line(capsys)
    assert f"--ray-address '{address}'" in line
    assert "HOST:PORT" in line
    assert dataset.requests == []


def test_cluster_options_without_the_ray_executor_are_bad_input(
    dataset: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run_data("--workers", "4")) == EXIT_BAD_INPUT
    assert "--executor ray" in one_error_line(capsys)


def test_an_unknown_executor_names_the_known_ones(
    dataset: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run_data("--executor", "dask")) == EXIT_BAD_INPUT
    assert "unknown executor 'dask'; expected 'local' or 'ray'" in one_error_line(capsys)


def test_workers_cannot_remake_a_client_passed_in_directly() -> None:
    context = lmc.context(FakeLM())

    with pytest.raises(NotForWorkers, match=r"lmc\.LM"):
        WorkerSpec.of(context)


def test_a_client_made_by_lm_travels_as_its_model_string() -> None:
    client = lmc.LM("openai/x", api_base="http://127.0.0.1:8000/v1", retries=2)

    spec = WorkerSpec.of(lmc.context(client, cache=False))

    assert (spec.model.model, spec.model.api_base, spec.model.retries) == (
        "openai/x",
        "http://127.0.0.1:8000/v1",
        2,
    )
    assert spec.cache is None


def test_a_cluster_nobody_answers_at_is_a_run_error_at_once(
    dataset: FakeLM, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'lmc[ray]'")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    assert main(run_data("--executor", "ray", "--ray-address", f"127.0.0.1:{port}")) == EXIT_FAILED
    line = one_error_line(capsys)
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in line
    assert dataset.requests == []
