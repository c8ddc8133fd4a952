"""What `import lmc` and the quick commands load: only what they use.

`lmc --help`, `lmc check` and `lmc fmt` run in editors and on every save; `import lmc` in every
script. Each case runs in a fresh interpreter and lists the modules it ended with; nothing here
is timed (`bench/startup.py` measures the time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faultserver import FaultServer, reply

import lmc

# Third-party packages the quick paths must not load: the runtime's, the compiler's, rich.
# Ray only for `--executor ray`.
HEAVY = (
    "pydantic", "networkx", "rich", "jinja2", "lark", "litellm", "llama_cpp", "graphviz", "ray",
)  # fmt: skip

PROGRAM = """\
signature Shorten = "text -> summary"

program Summary(text: str) -> (summary: str) {
    step = predict Shorten(text=text)
    return summary = step.summary
}
"""

LIST_MODULES = """
import json, sys
{run}
print(json.dumps(sorted(sys.modules)))
"""

RUN_COMMAND = """
from lmc.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def modules_after(code: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", LIST_MODULES.format(run=code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return set(loaded)


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_import_lmc_loads_no_dependency_and_no_submodule(tmp_path: Path) -> None:
    loaded = modules_after("import lmc", tmp_path)

    assert packages(loaded) & set(HEAVY) == set()
    assert {name for name in loaded if name.startswith("lmc.")} == set()


def test_every_public_name_is_there_on_first_use() -> None:
    for name in lmc.__all__:
        assert getattr(lmc, name) is not None, name
    assert set(lmc.__all__) <= set(dir(lmc))
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        _ = lmc.frobnicate  # type: ignore[attr-defined]


def test_help_loads_only_the_command_table(tmp_path: Path) -> None:
    loaded = modules_after(RUN_COMMAND.format(argv=["--help"]), tmp_path)

    assert packages(loaded) & set(HEAVY) == set()
    assert {name for name in loaded if name.startswith("lmc.")} == {
        "lmc.cli",
        "lmc.cli.arguments",
        "lmc.cli.errors",
        "lmc.cli.main",
        "lmc.cli.options",
        "lmc.diagnostics",
        "lmc.errors",
        "lmc.passes",
        "lmc.passes.pipeline",
        "lmc.plugins",
        "lmc.strings",
    }


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_check_and_fmt_load_no_runtime_compiler_or_rich(tmp_path: Path, command: str) -> None:
    (tmp_path / "summary.lmp").write_text(PROGRAM, encoding="utf-8")

    loaded = modules_after(RUN_COMMAND.format(argv=[command, "summary.lmp"]), tmp_path)

    assert "lmc.cli." + command in loaded  # the command did run
    assert packages(loaded) & set(HEAVY) <= {"lark"}
    lmc_parts = {".".join(name.split(".")[:2]) for name in loaded if name.startswith("lmc.")}
    assert lmc_parts & {"lmc.runtime", "lmc.backends", "lmc.compiler", "lmc.builder"} == set()


def test_fmt_does_not_build_the_program_graph(tmp_path: Path) -> None:
    (tmp_path / "summary.lmp").write_text(PROGRAM, encoding="utf-8")

    loaded = modules_after(RUN_COMMAND.format(argv=["fmt", "summary.lmp"]), tmp_path)

    assert "networkx" not in packages(loaded)
    assert "lmc.ir.graph" not in loaded


def test_a_run_on_a_served_model_never_imports_litellm(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    # `openai/NAME` with an api base is called with the stdlib: litellm (seconds to import,
    # 150 MB resident) and the HTTP stack under it stay out of the process.
    (tmp_path / "summary.lmp").write_text(PROGRAM, encoding="utf-8")
    fault_server.otherwise = reply('{"summary": "short"}')
    argv = ["run", "summary.lmp", "--lm", "openai/x", "--api-base", fault_server.url]
    argv += ["--input", "text=a long text", "--no-cache"]

    loaded = modules_after(RUN_COMMAND.format(argv=argv), tmp_path)

    assert "lmc.backends.clients.served" in loaded  # the run did call the server
    assert fault_server.calls == 1
    assert packages(loaded) & {"litellm", "httpx", "openai", "aiohttp"} == set()
