"""A compiled program as one JSON file: the program's text form and how it was compiled.

`lmc compile` (and `program.save("x.json")`) writes an artifact; `lmc run`, `lmc show`,
`lmc eval`, `lmc fmt` and `lmc.load` read one wherever they read a `.lmp` file. It is plain JSON
(never pickle), so it can be read, diffed and reviewed:

    {"schema": "lmc-artifact", "version": 2, "created": ..., "lm": ..., "backend": ...,
     "datasets": {...}, "metric": {...}, "passes": [...], "program": ".lmp text",
     "misses": [...], "command": "lmc compile ..."}

`program` is the IR's text form (`lmc.ir.text`), with the instructions and demos the passes
learned and corpus paths relative to the artifact's folder; reading parses it back into the
graph. The rest is metadata: the model and backend it was compiled for, the datasets' sha256,
the metric, the pass log (each pass's candidates with their scores) and a sample of the dev
examples the program still gets wrong. Artifacts from before the candidates and misses were
kept read as having none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from lmc.diagnostics import ProgramError
from lmc.errors import InputError
from lmc.files import JSONUnreadable, NotUTF8, file_text, json_value, write_atomically
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import parse_program, print_program, program_error_line
from lmc.passes.record import PassRecord
from lmc.plugins import PYTHON_RETRIEVER

SCHEMA = "lmc-artifact"
SCHEMA_VERSION = 2

T = TypeVar("T")


class ArtifactError(InputError):
    """An artifact file that cannot be used: not JSON, another schema or version, incomplete, or
    a program that does not check. The message names the file and what was expected."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DevMiss:
    """A dev example the compiled program still gets wrong, as the compile's last score saw it:
    what the report shows, expected beside predicted, without another LM call."""

    record: int  # its record number in the file dev came from (`--train` when split from it)
    inputs: dict[str, Any]
    expected: dict[str, Any]  # the fields the metric compares (every non-input field if unknown)
    predicted: dict[str, Any] | None  # None: the run failed (see `error`)
    score: float
    error: str | None = None  # why the run, or the metric on `predicted`, failed

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "inputs": self.inputs,
            "expected": self.expected,
            "predicted": self.predicted,
            "score": round(self.score, 4),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevMiss:
        """A miss `to_json` wrote; `TypeError` or `KeyError` when it is not one."""
        found = cls(
            data["record"],
            data["inputs"],
            data["expected"],
            data["predicted"],
            data["score"],
            data.get("error"),
        )
        well_formed = (
            isinstance(found.record, int)
            and isinstance(found.inputs, dict)
            and isinstance(found.expected, dict)
            and (found.predicted is None or isinstance(found.predicted, dict))
            and isinstance(found.score, int | float)
            and not isinstance(found.score, bool)
            and (found.error is None or isinstance(found.error, str))
        )
        if not well_formed:
            raise TypeError(f"not a dev example: {data}")
        return found


@dataclass(frozen=True)
class CompileInfo:
    """How a program was compiled: what an artifact holds beside the program itself."""

    lm: str | None = None  # the model as the user named it; None: not compiled for one
    backend: str | None = None
    datasets: dict[str, str] = field(default_factory=dict)  # dataset name -> sha256
    metric: dict[str, Any] | None = None  # `Metric.to_json()`
    passes: tuple[PassRecord, ...] = ()
    created: str = field(default_factory=_now)  # ISO 8601
    # A sample of the dev examples the program still gets wrong; empty when the compile did not
    # score the final program itself (or the artifact predates this record).
    misses: tuple[DevMiss, ...] = ()
    command: str | None = None  # the command line that compiled it, where one did
    # Where the model was served (`--api-base`), so that running the artifact asks the same
    # server, not a hosted provider of that model's name; None: no address was given.
    api_base: str | None = None


def artifact_to_json(program: ProgramGraph, info: CompileInfo, folder: str) -> dict[str, Any]:
    """The JSON object `write_artifact` writes; corpus paths relative to `folder`."""
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": info.created,
        "lm": info.lm,
        "api_base": info.api_base,
        "backend": info.backend,
        "datasets": dict(info.datasets),
        "metric": info.metric,
        "passes": [r.to_json() for r in info.passes],
        "program": print_program(program, folder),
        "misses": [m.to_json() for m in info.misses],
        "command": info.command,
    }


def write_artifact(path: str | os.PathLike[str], program: ProgramGraph, info: CompileInfo) -> None:
    """Write the artifact as one JSON file, atomically: a reader sees the old file or the new one.

    Raises `ValueError` for a graph that fails `verify()`, so no unreadable artifact is written.
    """
    # As a reader finds it: by the path as given, a linked folder not followed (see `read`).
    folder = os.path.dirname(os.path.abspath(path))
    text = json.dumps(artifact_to_json(program, info, folder), indent=2, ensure_ascii=False)
    write_atomically(Path(path), (text + "\n").encode("utf-8"))


# reading -----------------------------------------------------------------------------------------

_JSON_KINDS: dict[type, str] = {
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
}


def _what(value: Any) -> str:
    """What a JSON value is, in words, for saying what was found instead."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _take(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    """`data[key]`, which must be a `kind` (bool never passes for int)."""
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(
            f"{where}: '{key}' should be {_JSON_KINDS.get(kind, kind.__name__)}, "
            f"found {_what(value)}"
        )
    return value


def _take_optional(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    return None if data[key] is None else _take(data, key, kind, where)


_REQUIRED = ("created", "lm", "backend", "datasets", "metric", "passes", "program")


def read_artifact(path: str | os.PathLike[str]) -> tuple[ProgramGraph, CompileInfo]:
    """The program and compile record of an artifact `write_artifact` wrote.

    Raises `ArtifactError`, naming the file, for anything that makes it unusable.
    """
    name = os.fspath(path)
    data = _read_json(name)
    _check_header(data, name)
    info = _compile_info(data, name)
    text = _take(data, "program", str, name)
    # Errors in the embedded text name the artifact; corpus paths resolve against its folder.
    beside = os.path.join(os.path.dirname(os.path.abspath(name)), "program.lmp")
    try:
        graph = parse_program(text, beside)
    except ProgramError as error:
        raise ArtifactError(
            f"{name}: its program does not check: {program_error_line(error)}"
        ) from None
    return graph, info


def with_corpora(
    graph: ProgramGraph, given: Mapping[str, str], artifact: str | None = None
) -> ProgramGraph:
    """The program with the corpora it reads when it runs: each index's corpus from `given`
    (`--corpus NAME=PATH`) where the user names one, else its own; an artifact's own corpus must
    lie in the artifact's folder. An artifact from elsewhere could otherwise name any JSONL file
    on the machine, and a run would quote that file's text to the model."""
    unknown = sorted(set(given) - set(graph.indexes))
    if unknown:
        known = ", ".join(graph.indexes) or "none"
        raise ArtifactError(
            f"--corpus {unknown[0]}=...: program {graph.name} has no index '{unknown[0]}' "
            f"(its indexes: {known})"
        )
    folder = os.path.realpath(os.path.dirname(os.path.abspath(artifact))) if artifact else None
    result = graph.copy()
    for name, ref in graph.indexes.items():
        if name in given:
            result.indexes[name] = replace(ref, path=os.path.abspath(given[name]))
        elif folder is not None and ref.kind != PYTHON_RETRIEVER:
            inside = os.path.commonpath([folder, os.path.realpath(ref.path)]) == folder
            if not inside:
                raise ArtifactError(
                    f"{artifact}: index '{name}' reads {ref.path}, outside the artifact's folder; "
                    f"an artifact reads corpora beside it only: copy the corpus there, or name "
                    f"it yourself with --corpus {name}={ref.path}"
                )
    return result


def _check_header(data: Any, name: str) -> None:
    """An lmc artifact, of the version this lmc reads, with every key it needs."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ArtifactError(
            f'{name}: not an lmc artifact (expected a JSON object with "schema": "{SCHEMA}", '
            "as lmc compile writes)"
        )
    version = data.get("version")
    if version != SCHEMA_VERSION:
        which = (
            f"artifact version {version}"
            if isinstance(version, int) and not isinstance(version, bool)
            else "an unknown artifact version"
        )
        raise ArtifactError(
            f"{name}: written by lmc with {which}; this lmc reads version {SCHEMA_VERSION}: "
            "re-run lmc compile"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ArtifactError(
            f"{name}: an incomplete artifact: missing {', '.join(repr(m) for m in missing)}"
        )


def _compile_info(data: dict[str, Any], name: str) -> CompileInfo:
    datasets = _take(data, "datasets", dict, name)
    for dataset, digest in datasets.items():
        if not isinstance(digest, str):
            raise ArtifactError(
                f"{name}: dataset '{dataset}' should have a sha256 text, found {_what(digest)}"
            )
    passes = []
    for number, record in enumerate(_take(data, "passes", list, name), start=1):
        try:
            passes.append(PassRecord.from_json(record))
        except (TypeError, KeyError, AttributeError):
            raise ArtifactError(f"{name}: pass {number} is not a pass record") from None
    misses = []
    listed = _take(data, "misses", list, name) if "misses" in data else []
    for number, miss in enumerate(listed, start=1):
        try:
            misses.append(DevMiss.from_json(miss))
        except (TypeError, KeyError, AttributeError):
            raise ArtifactError(f"{name}: miss {number} is not a dev example") from None
    return CompileInfo(
        lm=_take_optional(data, "lm", str, name),
        api_base=_take_optional(data, "api_base", str, name) if "api_base" in data else None,
        backend=_take_optional(data, "backend", str, name),
        datasets=dict(datasets),
        metric=_take_optional(data, "metric", dict, name),
        passes=tuple(passes),
        created=_take(data, "created", str, name),
        misses=tuple(misses),
        command=_take_optional(data, "command", str, name) if "command" in data else None,
    )


def _read_json(name: str) -> Any:
    try:
        text = file_text(name)
    except FileNotFoundError:
        raise ArtifactError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ArtifactError(f"{name}: is a folder, expected an artifact .json file") from None
    except NotUTF8 as bad:
        raise ArtifactError(f"{name}: line {bad.line}: {bad}") from None
    except OSError as error:
        raise ArtifactError(f"{name}: cannot read it ({error.strerror})") from None
    try:
        return json_value(text)
    except JSONUnreadable as error:
        decoding = error.decode_error
        if decoding is None:
            raise ArtifactError(f"{name}: not an lmc artifact: {error}") from None
        raise ArtifactError(
            f"{name}: not an lmc artifact: invalid JSON at line {decoding.lineno}, "
            f"column {decoding.colno} ({decoding.msg}); the file may be truncated"
        ) from None
