"""One error tree: every error lmc raises for a user is an `InputError` (exit 2) or a `RunError`
(exit 1), and the command line maps them by kind, in one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lmc
from lmc.cli.errors import EXIT_BAD_INPUT, EXIT_FAILED
from lmc.cli.main import exit_code
from lmc.errors import InputError, LmcError, RunError

# Raised and caught inside lmc, never reaching a user: a reply a backend could not parse (the
# executor repairs it or raises StepFailed), values that do not fit their types (turned into a
# DataError, a ReplyError or a FunctionFailed), `lmc opt`'s signal that a pass wants data, and a
# function's result of the wrong shape (turned into a FunctionFailed), and JSON beyond lmc's limits
# (each reader turns it into its own error, naming the file and record), as it does text that is
# not UTF-8, and one failed try of a served or hosted model's call (retried, or turned into a
# HostedLMError), and an attribute `import_target` did not find (a FunctionUnavailable, a
# MetricError or a PluginUnavailable that names it), and a dropped record's work stopped before
# its next LM call in its worker thread (its result is never read).
INTERNAL = {
    "ReplyError",
    "InvalidValues",
    "NeedsData",
    "_Unfit",
    "JSONUnreadable",
    "NotUTF8",
    "TryFailed",
    "MissingAttribute",
    "RecordDropped",
    "_NotAJSONValue",
}

# Loading these needs an optional extra (and torch); they declare no error of their own.
SKIPPED = {"lmc.retrieval.embeddings"}

KINDS = {
    "ProgramError": InputError,
    "DataError": InputError,
    "ArtifactError": InputError,
    "PipelineError": InputError,
    "OptunaMissing": InputError,
    "MetricError": InputError,
    "MetricUnavailable": InputError,
    "BudgetTooSmall": InputError,
    "UnknownName": InputError,
    "PluginUnavailable": InputError,
    "Unimportable": InputError,
    "FunctionUnavailable": InputError,
    "UsageError": InputError,
    "TemplateMissing": InputError,
    "TraceError": InputError,
    "UnwritablePath": InputError,
    "UnreadableSource": InputError,
    "CacheUnusable": InputError,
    "NotAModelFile": InputError,
    "ExecutorOptionInvalid": InputError,
    "NotForWorkers": InputError,
    "RayMissing": InputError,
    "RayAddressInvalid": InputError,
    "StepFailed": RunError,
    "LMCallFailed": RunError,
    "HostedLMError": RunError,
    "PromptTooLong": RunError,
    "GrammarRejected": RunError,
    "ModelFileError": RunError,
    "RetrievalUnavailable": RunError,
    "NearestUnavailable": RunError,
    "TemplateFailed": RunError,
    "PassBroke": RunError,
    "BaselineFailed": RunError,
    "BudgetExhausted": RunError,
    "RenderError": RunError,
    "RunFailed": RunError,
    "FunctionFailed": RunError,
    "RetrieverFailed": RunError,
    "RecordFailure": RunError,
    "ClusterUnreachable": RunError,
    "WorkersLost": RunError,
}


def lmc_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    # lmc.backends and lmc.passes live in folders of their own that the package maps.
    names = [m.name for m in pkgutil.walk_packages(lmc.__path__, "lmc.")]
    for package in ("lmc.backends", "lmc.passes"):
        path = importlib.import_module(package).__path__
        names += [m.name for m in pkgutil.walk_packages(path, f"{package}.")]
    for module_name in sorted(set(names) - SKIPPED):
        for name, value in vars(importlib.import_module(module_name)).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
            ):
                found[name] = value
    return found


def kind_of(cls: type[BaseException]) -> type[LmcError] | None:
    return next((kind for kind in (InputError, RunError) if issubclass(cls, kind)), None)


def test_every_error_lmc_declares_is_an_input_error_or_a_run_error() -> None:
    # A new error class fails this until it is given a kind here (and so an exit code).
    declared = {
        name: cls
        for name, cls in lmc_errors().items()
        if name not in INTERNAL | {"LmcError", "InputError", "RunError"}
    }

    assert {name: kind_of(cls) for name, cls in declared.items()} == {
        name: KINDS.get(name) for name in declared
    }
    assert set(declared) == set(KINDS)


def test_input_and_run_errors_are_never_both() -> None:
    for cls in lmc_errors().values():
        assert not (issubclass(cls, InputError) and issubclass(cls, RunError)), cls


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputError("bad input"), EXIT_BAD_INPUT),
        (RunError("the work failed"), EXIT_FAILED),
    ],
)
def test_the_command_line_maps_each_kind_to_its_exit_code(
    error: LmcError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(error) == code
    assert capsys.readouterr().err == f"lmc: error: {error}\n"


def test_an_error_that_is_not_lmcs_is_left_to_show_its_traceback() -> None:
    assert exit_code(ZeroDivisionError("a bug")) is None


def test_one_except_clause_catches_whatever_lmc_raises_for_a_user() -> None:
    with pytest.raises(lmc.LmcError):
        lmc.loads("program P(")
    with pytest.raises(lmc.InputError, match="unknown model"):
        lmc.LM("gpt-4o")
