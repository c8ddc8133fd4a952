"""What a file may cause (the README's trust model): a `.lmp` file or an artifact names Python
callables by import path only, and running it imports them and nothing else; reading,
formatting or drawing it imports nothing; a callable that cannot be imported stops the run before
its first LM call with one line naming it and how to make it importable (exit 2, as any name the
user gave that cannot be imported); no field of an artifact, dataset or trace is ever evaluated
as code.

The command-line tests run a real `lmc` process: what it can import is the point.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_BAD_INPUT, EXIT_OK, main

ROOT = Path(__file__).resolve().parent.parent

COUNT = """\
function Count = "{target}" {{
    input  text:   str
    output result: int
}}

program P(text: str) -> (n: int) {{
    c = call Count(text=text)
    return n = c.result
}}
"""

RETRIEVE = """\
index docs = python("{target}")

program P(text: str) -> (passages: list[str]) {{
    found = retrieve docs(query=text, k=2)
    return passages = found
}}
"""

# Importing it leaves a mark, so a test sees whether lmc imported it.
CANARY = """\
import os
from pathlib import Path

Path(os.environ["CANARY"]).write_text("imported", encoding="utf-8")


def count(text):
    return len(text.split())


class Docs:
    def forward(self, query, k=3):
        return ["one", "two", "three"][:k]
"""


def artifact(path: Path, text: str) -> Path:
    lmc.loads(text).save(path)
    return path


def lmc_process(
    tmp_path: Path, *argv: str | Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LMC_CACHE_DIR": str(tmp_path / "cache"),
        "CANARY": str(tmp_path / "imported"),
    }
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(Path(sys.executable).parent / "lmc"), *map(str, argv)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# A callable nobody made importable ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "target"),
    [(COUNT, "nosuchmodule:fn"), (RETRIEVE, "nosuchmodule:Docs")],
    ids=["function", "retriever"],
)
def test_an_artifact_naming_a_module_nobody_can_import_exits_2_in_one_line(
    tmp_path: Path, program: str, target: str
) -> None:
    saved = artifact(tmp_path / "compiled.json", program.format(target=target))

    done = lmc_process(tmp_path, "run", saved, "--input", "text=a b c")

    assert (done.returncode, done.stdout) == (EXIT_BAD_INPUT, "")
    assert done.stderr == (
        f"lmc: error: cannot import nosuchmodule for {target} (No module named 'nosuchmodule'); "
        "make it importable: install its package, or add the folder that holds nosuchmodule "
        "to PYTHONPATH\n"
    )


def test_what_the_message_says_makes_it_run(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "canary.py").write_text(CANARY, encoding="utf-8")
    # Written beside the module: an artifact's own folder is not searched (a .lmp file's is).
    saved = artifact(tools / "compiled.json", COUNT.format(target="canary:count"))

    refused = lmc_process(tmp_path, "run", saved, "--input", "text=a b c")
    done = lmc_process(tmp_path, "run", saved, "--input", "text=a b c", pythonpath=tools)

    assert refused.returncode == EXIT_BAD_INPUT
    assert "add the folder that holds canary to PYTHONPATH" in refused.stderr
    assert (done.returncode, done.stdout, done.stderr) == (EXIT_OK, "n: 3\n", "")


def test_a_module_that_raises_while_imported_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no config file')\n")
    saved = artifact(tmp_path / "compiled.json", COUNT.format(target="broken:count"))

    done = lmc_process(tmp_path, "run", saved, "--input", "text=a", pythonpath=tmp_path)

    assert (done.returncode, done.stdout) == (EXIT_BAD_INPUT, "")
    assert done.stderr == (
        "lmc: error: importing broken for broken:count raised RuntimeError: no config file\n"
    )


def test_it_stops_the_run_before_the_first_lm_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLM(lambda request: '{"text": "a b c"}')
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: fake)
    monkeypatch.chdir(tmp_path)
    text = (
        COUNT.format(target="nosuchmodule:fn")
        .replace("P(text: str)", "P(question: str)")
        .replace(
            "    c = call Count(text=text)",
            '    t = predict "question -> text"(question=question)\n'
            "    c = call Count(text=t.text)",
        )
    )
    artifact(tmp_path / "compiled.json", text)
    Path("d.jsonl").write_text('{"question": "q", "n": 3}\n', encoding="utf-8")

    for command in (
        ["run", "compiled.json", "--input", "question=q"],
        ["eval", "compiled.json", "--data", "d.jsonl", "--metric", "exact_match(n)"],
        ["compile", "compiled.json", "--train", "d.jsonl", "--metric", "exact_match(n)"],
    ):
        assert main(command) == EXIT_BAD_INPUT
        assert "cannot import nosuchmodule for nosuchmodule:fn" in capsys.readouterr().err
    assert fake.requests == []


# What reading a file may cause: nothing ----------------------------------------------------------


def test_reading_formatting_and_drawing_import_nothing_that_running_imports(
    tmp_path: Path,
) -> None:
    (tmp_path / "canary.py").write_text(CANARY, encoding="utf-8")
    source = tmp_path / "count.lmp"
    source.write_text(COUNT.format(target="canary:count"), encoding="utf-8")
    saved = artifact(tmp_path / "compiled.json", RETRIEVE.format(target="canary:Docs"))

    shown = [
        lmc_process(tmp_path, "check", source, pythonpath=tmp_path),
        lmc_process(tmp_path, "fmt", source, pythonpath=tmp_path),
        lmc_process(tmp_path, "fmt", saved, pythonpath=tmp_path),
        lmc_process(tmp_path, "show", saved, "--lmp", pythonpath=tmp_path),
        lmc_process(tmp_path, "show", saved, "-o", "graph.dot", pythonpath=tmp_path),
    ]
    assert lmc.load(saved) == lmc.load(saved)  # lmc.load reads it in this process

    assert [s.returncode for s in shown] == [EXIT_OK] * len(shown)
    assert 'index docs = python("canary:Docs", text="text")' in shown[2].stdout
    assert not (tmp_path / "imported").exists()

    ran = lmc_process(tmp_path, "run", saved, "--input", "text=q", pythonpath=tmp_path)

    assert (ran.returncode, ran.stdout) == (EXIT_OK, 'passages: ["one", "two"]\n')
    assert (tmp_path / "imported").exists()


SHELL = """\
function Shell = "os:system" {
    input  command: str
    output status:  int
}

program P(command: str) -> (status: int) {
    s = call Shell(command=command)
    return status = s.status
}
"""


def test_running_an_artifact_is_running_code(tmp_path: Path) -> None:
    # Any importable callable may be named, `os:system` too: run only artifacts you would run as
    # a .py file. What it names is in plain sight before it runs.
    saved = artifact(tmp_path / "compiled.json", SHELL)

    shown = lmc_process(tmp_path, "fmt", saved)
    assert 'function Shell = "os:system" {' in shown.stdout
    assert not (tmp_path / "ran").exists()

    done = lmc_process(tmp_path, "run", saved, "--input", "command=touch ran")

    assert (done.returncode, done.stdout) == (EXIT_OK, "status: 0\n")
    assert (tmp_path / "ran").exists()


# No field is code --------------------------------------------------------------------------------

PAYLOAD = "__import__('os').system('touch pwned')"


def test_no_field_of_an_artifact_or_a_dataset_is_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLM(lambda request: json.dumps({"answer": PAYLOAD}))
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: fake)
    monkeypatch.chdir(tmp_path)
    program = lmc.loads(
        "program QA(question: str) -> (answer: str) {\n"
        f'    gen = predict "question -> answer"(question=question) {{\n'
        f"        instruction {json.dumps(PAYLOAD)}\n"
        f"        demo {{ question: {json.dumps(PAYLOAD)}  answer: {json.dumps(PAYLOAD)} }}\n"
        "    }\n"
        "    return answer = gen.answer\n"
        "}\n"
    )
    program.save("qa.json")
    data = json.loads(Path("qa.json").read_text(encoding="utf-8"))
    data.update(created=PAYLOAD, backend="json", datasets={"train": PAYLOAD})
    data.update(metric={"name": PAYLOAD, "field": "answer"}, lm=PAYLOAD)
    Path("qa.json").write_text(json.dumps(data), encoding="utf-8")
    Path("data.jsonl").write_text(json.dumps({"question": PAYLOAD, "answer": PAYLOAD}) + "\n")

    assert main(["run", "qa.json", "--data", "data.jsonl", "--trace", "t.jsonl"]) == EXIT_OK
    assert main(["trace", "show", "t.jsonl"]) == EXIT_OK
    assert main(["eval", "qa.json", "--data", "data.jsonl"]) == EXIT_BAD_INPUT  # a name, looked up
    capsys.readouterr()

    assert not Path("pwned").exists()
    assert PAYLOAD in fake.requests[0].messages[0].content  # text to the model, nothing more


def test_no_part_of_lmc_evaluates_text_or_unpickles() -> None:
    """Nothing lmc reads (artifacts, datasets, traces, corpora, its cache) can become code: no
    eval/exec/compile and no pickle, marshal or shelve anywhere in the package."""
    forbidden_calls = {"eval", "exec", "compile", "__import__"}
    forbidden_modules = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"}
    found = []
    for folder in ("lmc", "backends", "passes", "grammar"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            # A module's own `compile` (lmc.compile) is not the builtin.
            own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            own |= {
                a.asname or a.name
                for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)
                for a in n.names
            }
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    if node.func.id in forbidden_calls - own:
                        found.append(f"{where}: {node.func.id}()")
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                    module = node.module if isinstance(node, ast.ImportFrom) else None
                    for name in [*names, *([module] if module else [])]:
                        if name.split(".")[0] in forbidden_modules:
                            found.append(f"{where}: import {name}")

    assert found == []
