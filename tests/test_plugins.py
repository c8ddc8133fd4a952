"""One registry pattern for every pluggable kind: names are listed and checked without importing
what they name, other packages add entries in code or through an installed entry point, and a
taken name is never silently replaced."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lmc
from lmc.plugins import (
    BACKENDS,
    EXECUTORS,
    INDEX_KINDS,
    METRICS,
    MODEL_KINDS,
    PASSES,
    Registry,
    UnknownName,
)

REGISTRIES = (PASSES, BACKENDS, MODEL_KINDS, INDEX_KINDS, METRICS, EXECUTORS)


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_builtin_entry_loads(registry: Registry[object]) -> None:
    if registry is INDEX_KINDS:
        pytest.importorskip("sentence_transformers")
    for name in registry.names():
        assert registry.load(name) is not None


def test_an_unknown_name_says_what_there_is_and_the_closest_one() -> None:
    with pytest.raises(UnknownName) as raised:
        METRICS.load("exact")

    assert str(raised.value) == (
        "unknown metric 'exact'; expected 'contains', 'exact_match', 'f1' or 'numeric'; "
        "did you mean 'exact_match'?"
    )


def test_the_checker_reads_metric_and_index_names_from_the_registries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(METRICS, "_targets", dict(METRICS._targets))
    METRICS.register("shouted_match", lambda expected, predicted: float(expected == predicted))
    source = textwrap.dedent("""\
        signature QA {
            input question: str
            output answer: str
        }
        metric shouted_match(answer)
        program P(question: str) -> (answer: str) {
            gen = predict QA(question=question)
            return answer = gen.answer
        }
        """)

    assert lmc.loads(source).metric is not None
    with pytest.raises(lmc.LmcError, match="unknown metric 'shouty'"):
        lmc.loads(source.replace("shouted_match", "shouty"))


def test_a_registered_metric_scores_like_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmc.runtime.metrics import builtin

    monkeypatch.setattr(METRICS, "_targets", dict(METRICS._targets))
    METRICS.register(
        "length_match", lambda expected, predicted: float(len(expected) == len(predicted))
    )

    assert builtin("length_match", "answer").score({"answer": "abc"}, {"answer": "xyz"}) == 1.0


def test_a_registered_model_kind_opens_from_its_model_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lmc.backends.clients.fake import FakeLM

    monkeypatch.setattr(MODEL_KINDS, "_targets", dict(MODEL_KINDS._targets))
    MODEL_KINDS.register("echo", lambda spec, api_base: FakeLM(identity=f"echo:{spec}"))

    assert lmc.LM("echo:loud").identity == "echo:loud"


def test_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="a pass named 'fuse-steps' is already registered"):
        PASSES.register("fuse-steps", "somewhere:Else")


def test_an_installed_package_adds_a_pass_through_its_entry_point(tmp_path: Path) -> None:
    # A real distribution on sys.path: its metadata names the pass, its module defines it.
    (tmp_path / "shout_pass.py").write_text(
        textwrap.dedent("""\
            from dataclasses import dataclass

            @dataclass(frozen=True)
            class ShoutPass:
                loud: bool = True
            """)
    )
    info = tmp_path / "shout_pass-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-pass\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lmc.passes]\nshout = shout_pass:ShoutPass\n")
    script = (
        "from lmc.passes.pipeline import parse_pipeline\n"
        "from lmc.plugins import PASSES\n"
        "print('shout' in PASSES.names(), parse_pipeline('dead-steps,shout{loud=false}')[1])\n"
    )

    shown = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )

    assert shown.stdout.strip() == "True ShoutPass(loud=False)"


def test_listing_names_imports_nothing_they_name() -> None:
    script = (
        "import sys\nfrom lmc.plugins import PASSES, BACKENDS, METRICS, INDEX_KINDS\n"
        "before = set(sys.modules)\n"
        "[r.names() for r in (PASSES, BACKENDS, METRICS, INDEX_KINDS)]\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('lmc')))\n"
    )

    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert shown.stdout.strip() == "[]"


SUMMARY = """\
signature Shorten = "text -> summary"

program Summary(text: str) -> (summary: str) {
    step = predict Shorten(text=text)
    return summary = step.summary
}
"""


def _installed(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packages in `site` as the installed ones, scanned again and forgotten after the test;
    `summary.lmp` written in `tmp_path`, the working folder."""
    monkeypatch.syspath_prepend(site)
    monkeypatch.setattr(PASSES, "_targets", dict(PASSES._targets))
    monkeypatch.setattr(PASSES, "_origins", {})
    monkeypatch.setattr(PASSES, "_contested", {})
    monkeypatch.setattr(PASSES, "_scanned", False)
    monkeypatch.chdir(tmp_path)
    Path("summary.lmp").write_text(SUMMARY)


@pytest.mark.parametrize(
    ("module", "source", "error"),
    [
        (
            "syntax_pass",
            "class ShoutPass(:\n",
            "importing syntax_pass for the pass 'shout' (an entry point of the package "
            "shout-pass) raised SyntaxError: invalid syntax (syntax_pass.py, line 1)",
        ),
        (
            "needy_pass",
            "import not_installed_anywhere\n",
            "importing needy_pass for the pass 'shout' (an entry point of the package "
            "shout-pass) raised ModuleNotFoundError: No module named 'not_installed_anywhere'",
        ),
        (
            "raising_pass",
            "LOUDNESS = 1 / 0\n",
            "importing raising_pass for the pass 'shout' (an entry point of the package "
            "shout-pass) raised ZeroDivisionError: division by zero",
        ),
        (
            "renamed_pass",
            "class LoudPass:\n    pass\n",
            "renamed_pass has no 'ShoutPass' for the pass 'shout' (an entry point of the "
            "package shout-pass)",
        ),
    ],
    ids=["syntax-error", "import-error", "raises", "missing-attribute"],
)
def test_a_broken_plug_in_is_one_line_naming_it_and_its_error_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
    source: str,
    error: str,
) -> None:
    from lmc.cli.main import EXIT_BAD_INPUT, main

    site = tmp_path / "site"
    info = site / "shout_pass-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-pass\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[lmc.passes]\nshout = {module}:ShoutPass\n")
    (site / f"{module}.py").write_text(source)
    _installed(site, tmp_path, monkeypatch)

    code = main(["opt", "summary.lmp", "-p", "dead-steps,shout"])

    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (EXIT_BAD_INPUT, "", f"lmc: error: {error}\n")


def test_a_name_two_installed_packages_register_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Which `shout` the user meant is not lmc's to guess from the order packages were found in.
    from lmc.cli.main import EXIT_BAD_INPUT, main

    site = tmp_path / "site"
    for package in ("loud", "quiet"):
        info = site / f"{package}_pass-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {package}-pass\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(f"[lmc.passes]\nshout = {package}:ShoutPass\n")
    _installed(site, tmp_path, monkeypatch)

    code = main(["opt", "summary.lmp", "-p", "dead-steps,shout"])

    captured = capsys.readouterr()
    assert (code, captured.out) == (EXIT_BAD_INPUT, "")
    assert captured.err == (
        "lmc: error: two installed packages register the pass 'shout': "
        "loud-pass (loud:ShoutPass) and quiet-pass (quiet:ShoutPass); "
        "uninstall the one you do not use\n"
    )
