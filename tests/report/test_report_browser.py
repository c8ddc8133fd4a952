"""The reports as a browser shows them: Debian's Chromium, headless, loads each page from its
file with a fresh profile and no network services; the tests read the DOM it built and keep a
screenshot in the test's folder. `make test` installs Chromium; without it these are skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Compiled, Elements

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
)


def browse(page: Path, folder: Path, *what: str) -> str:
    """Run Chromium on `page` with a profile of its own under `folder`; its stdout."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it: apt-get install chromium)")
    profile = folder / f"profile-{len(list(folder.glob('profile-*')))}"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *what, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def dom(page: Path, folder: Path) -> Elements:
    return Elements(browse(page, folder, "--dump-dom"))


def screenshot(page: Path, folder: Path) -> Path:
    shot = folder / f"{page.stem}.png"
    browse(page, folder, "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}")
    return shot


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_compile_report_in_a_browser(compiled: Compiled, tmp_path: Path) -> None:
    log = json.loads(compiled.artifact.read_text(encoding="utf-8"))["passes"]
    shown = dom(compiled.report, tmp_path)

    # The program graph: Graphviz's SVG, its steps drawn as nodes.
    assert shown.all("svg", within="graph")
    assert [t.text for t in shown.all("title", within="graph") if t.text == "gen"] == ["gen"]
    # A row per pass, as in the artifact's log.
    rows = shown.all("tr", within="pass-table", cls="pass")
    assert [r.attrs["data-pass"] for r in rows] == [p["name"] for p in log]
    # The chart, with its line and candidates drawn.
    assert shown.all("svg", within="chart")
    drawn = len(shown.all("use", within="candidates-kept")) + len(
        shown.all("use", within="candidates-dropped")
    )
    assert drawn == sum(len(p["candidates"]) for p in log)
    assert is_png(screenshot(compiled.report, tmp_path))


def test_the_eval_report_in_a_browser(evaluated: Path, tmp_path: Path) -> None:
    shown = dom(evaluated, tmp_path)

    assert [int(c.text) for c in shown.all("td", within="confusion-table")][:3] == [2, 0, 0]
    assert len(shown.all("tr", within="example-table", cls="example")) == 4
    assert is_png(screenshot(evaluated, tmp_path))
