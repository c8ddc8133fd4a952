"""A command killed while it wrote a file (a compile's artifact, an index) leaves a hidden
temporary beside it; the next command that writes the same file removes it. (A dataset run's
`--out` is appended in place; `lmc.cli.results_file` removes what a killed rewrite of it left.)

`lmc.cli.main` runs in-process from inside `tmp_path`; every `--lm` resolves to a `FakeLM`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from programs import QA_WITH_METRIC as QA

from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_OK, main
from lmc.retrieval.index import index_folder, read_corpus


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLM:
    lm = FakeLM(lambda request: json.dumps({"answer": "yes"}), identity="fake")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("in.jsonl").write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": "yes"}) + "\n" for i in range(4)),
        encoding="utf-8",
    )
    return lm


def killed_leftover(folder: Path, name: str, *, is_folder: bool = False) -> Path:
    """What a write of `folder/name` killed by `kill -9` leaves: its temporary, named for a
    process that is gone."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    path = folder / f".{name}.{process.pid}.k1ll3d_x.tmp"
    if is_folder:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return path


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_compile_removes_what_a_killed_compile_left_beside_its_artifact(
    fake: FakeLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = killed_leftover(tmp_path, "qa.json")

    code = main(["compile", "qa.lmp", "--train", "in.jsonl", "-p", "dead-steps", "-o", "qa.json"])

    assert code == EXIT_OK
    assert not leftover.exists()
    assert hidden(tmp_path) == []
    assert Path("qa.json").is_file()


def test_an_index_build_removes_what_a_killed_build_left(
    fake: FakeLM, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_cache: Path
) -> None:
    Path("corpus.jsonl").write_text(
        '{"text": "Paris is in France."}\n{"text": "Rome is in Italy."}\n', encoding="utf-8"
    )
    folder = index_folder("bm25", read_corpus(Path("corpus.jsonl")))
    leftover = killed_leftover(folder.parent, folder.name, is_folder=True)

    assert main(["index", "build", "corpus.jsonl"]) == EXIT_OK

    assert not leftover.exists()
    assert hidden(folder.parent) == []
