"""`lmc run` on a `.lmp` file that calls Python: the function is found beside the file (as
`python script.py` finds the script's modules), from whatever folder lmc runs in; a failing
function exits 1 naming it, one that cannot be imported exits 2 (a name that names nothing). A real `lmc` process: what sys.path holds is the point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """\
function Count = "mytools:{name}" {{
    input  text:   str
    output result: int
}}

program P(text: str) -> (n: int) {{
    c = call Count(text=text)
    return n = c.result
}}
"""

TOOLS = """\
def count(text: str) -> int:
    return len(text.split())


def fail(text: str) -> int:
    raise RuntimeError("out of ink")
"""


def lmc_run(tmp_path: Path, name: str, tools: str = TOOLS) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mytools.py").write_text(tools, encoding="utf-8")
    (project / "count.lmp").write_text(PROGRAM.format(name=name), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lmc = Path(sys.executable).parent / "lmc"
    return subprocess.run(
        [str(lmc), "run", str(project / "count.lmp"), "--input", "text=a b c"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_function_beside_the_lmp_file_runs_from_any_folder(tmp_path: Path) -> None:
    done = lmc_run(tmp_path, "count")

    assert (done.returncode, done.stdout, done.stderr) == (0, "n: 3\n", "")


def test_a_function_that_raises_exits_1_naming_it(tmp_path: Path) -> None:
    done = lmc_run(tmp_path, "fail")

    assert done.returncode == 1
    assert done.stderr == (
        "lmc: error: step 'c': function mytools:fail raised RuntimeError: out of ink\n"
    )


def test_a_module_that_raises_attribute_error_while_imported_exits_2_naming_it(
    tmp_path: Path,
) -> None:
    # Said "mytools has no 'count'" before: the AttributeError came from the module's own code.
    done = lmc_run(tmp_path, "count", "settings = None\nINK = settings.ink\n\n" + TOOLS)

    assert done.returncode == 2
    assert done.stderr == (
        "lmc: error: importing mytools for mytools:count raised AttributeError: 'NoneType' "
        "object has no attribute 'ink'\n"
    )


def test_a_function_missing_from_its_module_exits_2_saying_so(tmp_path: Path) -> None:
    done = lmc_run(tmp_path, "tally")

    assert done.returncode == 2
    assert done.stderr == "lmc: error: mytools has no 'tally' (for mytools:tally)\n"
