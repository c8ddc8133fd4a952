"""A compiled program as one JSON file: the graph with what the passes learned, and how it was made.

`lmc compile` writes an artifact; `lmc run`, `lmc show` and `lmc eval` read one wherever they read
a `.lmp` file. The file is plain JSON (never pickle), so it can be read, diffed and reviewed:

    {"schema": "lmc-artifact", "version": 1, "created": ..., "lm": ..., "backend": ...,
     "datasets": {...}, "metric": {...}, "passes": [...], "source": "...", "program": {...}}

`program` is the graph (`graph_to_json`): nodes in insertion order, edges with the field and type
they carry, indexes, and each parameter key's learned instruction and demos. Types are written as
their `.lmp` spelling (`list[str]?`). `source` is the program's `.lmp` text: its declaration names
the program's inputs and outputs, and it is what `Program.to_lmp()` prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from lmc.diagnostics import LmcError
from lmc.files import write_atomically
from lmc.ir.graph import (
    ConcatNode,
    ConstNode,
    ConstValue,
    Demo,
    IndexRef,
    InputNode,
    ListNode,
    Node,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
    StepParams,
)
from lmc.ir.lower import load_text
from lmc.program import Program, _used_by, select
from lmc.signatures import MODULE_KINDS, FieldSpec, ModuleKind, SignatureSpec
from lmc.types import ListOf, LmType, Nothing, OptionalOf, Unknown

SCHEMA = "lmc-artifact"
SCHEMA_VERSION = 1

T = TypeVar("T")


class ArtifactError(Exception):
    """An artifact file that cannot be used: not JSON, another schema or version, incomplete, or
    a program graph that is not well-formed. The message names the file and what was expected."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    """A compiled program and the record of how it was compiled."""

    program: ProgramGraph
    source: str  # the program's `.lmp` text (`Program.to_lmp()`)
    lm: str
    backend: str
    datasets: dict[str, str] = field(default_factory=dict)  # dataset name -> sha256
    metric: dict[str, Any] | None = None  # `Metric.to_json()`
    passes: list[dict[str, Any]] = field(default_factory=list)  # the pass log, opaque JSON
    created: str = field(default_factory=_now)  # ISO 8601


# types -------------------------------------------------------------------------------------------


def type_from_text(text: str) -> LmType:
    """A type from its canonical text (`str(t)`), read with the `.lmp` type grammar.

    `nothing` and `unknown` have no `.lmp` spelling (they are the checker's own types), so they,
    and the list and optional forms around them, are read here; the rest goes to the parser.
    """
    from lmc.syntax.parser import parse_signature_text

    text = text.strip()
    if text == "nothing":
        return Nothing()
    if text == "unknown":
        return Unknown()
    if text.endswith("?"):
        inner = type_from_text(text[:-1])
        if isinstance(inner, OptionalOf):
            raise ArtifactError(f"unknown type '{text}'")
        return OptionalOf(inner)
    if text.startswith("list[") and text.endswith("]"):
        return ListOf(type_from_text(text[len("list[") : -1]))
    try:
        signature = parse_signature_text(f"x: {text} -> y")
    except LmcError:
        raise ArtifactError(f"unknown type '{text}'") from None
    if len(signature.inputs) != 1:
        raise ArtifactError(f"unknown type '{text}'")
    return signature.inputs[0].type


# graph -> JSON -----------------------------------------------------------------------------------


def graph_to_json(graph: ProgramGraph) -> dict[str, Any]:
    """The graph as JSON: nodes in insertion order, edges, indexes and learned parameters."""
    return {
        "name": graph.name,
        "nodes": [_node_to_json(node) for node in graph.nodes()],
        "edges": [
            {
                "source": source,
                "source_field": wire.source_field,
                "target": target,
                "target_field": wire.target_field,
                "type": str(wire.type),
            }
            for source, target, wire in graph.edges()
        ],
        "indexes": {
            name: {
                "kind": index.kind,
                "path": index.path,
                "text_field": index.text_field,
                "base": index.base,
            }
            for name, index in graph.indexes.items()
        },
        "params": {key: _params_to_json(key, params) for key, params in graph.params.items()},
    }


def _node_to_json(node: Node) -> dict[str, Any]:
    if isinstance(node, InputNode):
        return {"kind": "input", "name": node.name, "type": str(node.type)}
    if isinstance(node, OutputNode):
        return {"kind": "output", "name": node.name, "type": str(node.type)}
    if isinstance(node, StepNode):
        return {
            "kind": "step",
            "name": node.name,
            "module": node.module,
            "param_key": node.param_key,
            "signature": _signature_to_json(node.signature),
        }
    if isinstance(node, RetrieveNode):
        return {"kind": "retrieve", "name": node.name, "index": node.index, "k": node.k}
    if isinstance(node, ConstNode):
        return {
            "kind": "const",
            "name": node.name,
            "value": _const_to_json(node.value),
            "type": str(node.type),
        }
    if isinstance(node, ListNode):
        return {"kind": "list", "name": node.name, "size": node.size, "type": str(node.type)}
    return {"kind": "concat", "name": node.name, "type": str(node.type)}


def _signature_to_json(signature: SignatureSpec) -> dict[str, Any]:
    def one(spec: FieldSpec) -> dict[str, Any]:
        return {"name": spec.name, "type": str(spec.type), "desc": spec.desc}

    return {
        "name": signature.name,
        "instruction": signature.instruction,
        "inputs": [one(f) for f in signature.inputs],
        "outputs": [one(f) for f in signature.outputs],
    }


def _const_to_json(value: ConstValue) -> Any:
    if isinstance(value, tuple):
        return [_const_to_json(item) for item in value]
    return value


def _params_to_json(key: str, params: StepParams) -> dict[str, Any]:
    demos = []
    for demo in params.demos:
        names = [name for name, _ in demo.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"parameters '{key}': a demo names a field twice: {names}")
        demos.append(dict(demo.fields))
    return {"instruction": params.instruction, "demos": demos}


# JSON -> graph -----------------------------------------------------------------------------------


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
    if key not in data:
        raise ArtifactError(f"{where}: missing '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(
            f"{where}: '{key}' should be {_JSON_KINDS.get(kind, kind.__name__)}, "
            f"found {_what(value)}"
        )
    return value


def _take_optional(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    if data.get(key) is None:
        if key not in data:
            raise ArtifactError(f"{where}: missing '{key}'")
        return None
    return _take(data, key, kind, where)


def _take_type(data: Mapping[str, Any], key: str, where: str) -> LmType:
    text = _take(data, key, str, where)
    try:
        return type_from_text(text)
    except ArtifactError as error:
        raise ArtifactError(f"{where}: {error}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}: should be an object, found {_what(value)}")
    return value


def graph_from_json(data: Any) -> ProgramGraph:
    """The graph `graph_to_json` wrote; `ArtifactError` names what is missing or malformed.

    The graph is returned as read: `read_artifact` also checks it with `verify()`.
    """
    data = _object(data, "program")
    graph = ProgramGraph(_take(data, "name", str, "program"))
    for number, item in enumerate(_take(data, "nodes", list, "program"), start=1):
        node = _node_from_json(_object(item, f"program: node {number}"), f"program: node {number}")
        try:
            graph.add(node)
        except ValueError as error:
            raise ArtifactError(f"program: node {number}: {error}") from None
    for number, item in enumerate(_take(data, "edges", list, "program"), start=1):
        _edge_from_json(graph, _object(item, f"program: edge {number}"), f"program: edge {number}")
    for name, item in _take(data, "indexes", dict, "program").items():
        where = f"program: index '{name}'"
        index = _object(item, where)
        graph.indexes[name] = IndexRef(
            name,
            _take(index, "kind", str, where),
            _take(index, "path", str, where),
            _take(index, "text_field", str, where),
            _take(index, "base", str, where),
        )
    params = _take(data, "params", dict, "program")
    for key in graph.params:
        if key not in params:
            raise ArtifactError(f"program: params: missing '{key}', which a step reads")
    for key, item in params.items():
        graph.params[key] = _params_from_json(_object(item, f"program: params '{key}'"), key)
    return graph


def _node_from_json(data: dict[str, Any], where: str) -> Node:
    kind = _take(data, "kind", str, where)
    name = _take(data, "name", str, where)
    if kind == "input":
        return InputNode(name, _take_type(data, "type", where))
    if kind == "output":
        return OutputNode(name, _take_type(data, "type", where))
    if kind == "step":
        module = _take(data, "module", str, where)
        if module not in MODULE_KINDS:
            raise ArtifactError(
                f"{where}: unknown module '{module}'; expected {' or '.join(MODULE_KINDS)}"
            )
        module_kind: ModuleKind = "predict" if module == "predict" else "chain_of_thought"
        signature = _signature_from_json(_take(data, "signature", dict, where), where)
        return StepNode(name, signature, module_kind, _take(data, "param_key", str, where))
    if kind == "retrieve":
        return RetrieveNode(name, _take(data, "index", str, where), _take(data, "k", int, where))
    if kind == "const":
        if "value" not in data:
            raise ArtifactError(f"{where}: missing 'value'")
        value = _const_from_json(data["value"], where)
        return ConstNode(name, value, _take_type(data, "type", where))
    if kind in ("list", "concat"):
        list_type = _take_type(data, "type", where)
        if not isinstance(list_type, ListOf):
            raise ArtifactError(
                f"{where}: a {kind} node's type should be list[T], found {list_type}"
            )
        if kind == "list":
            return ListNode(name, _take(data, "size", int, where), list_type)
        return ConcatNode(name, list_type)
    raise ArtifactError(
        f"{where}: unknown node kind '{kind}'; expected input, output, step, retrieve, const, "
        "list or concat"
    )


def _signature_from_json(data: dict[str, Any], where: str) -> SignatureSpec:
    where = f"{where}: signature"

    def fields(key: str) -> tuple[FieldSpec, ...]:
        specs = []
        for number, item in enumerate(_take(data, key, list, where), start=1):
            at = f"{where}: {key} {number}"
            spec = _object(item, at)
            specs.append(
                FieldSpec(
                    _take(spec, "name", str, at),
                    _take_type(spec, "type", at),
                    _take_optional(spec, "desc", str, at),
                )
            )
        return tuple(specs)

    return SignatureSpec(
        _take_optional(data, "name", str, where),
        fields("inputs"),
        fields("outputs"),
        _take_optional(data, "instruction", str, where),
    )


def _const_from_json(value: Any, where: str) -> ConstValue:
    if isinstance(value, list):
        return tuple(_const_from_json(item, where) for item in value)
    if isinstance(value, str | int | float | bool):
        return value
    raise ArtifactError(f"{where}: a constant should be text, a number, true, false or a list")


def _edge_from_json(graph: ProgramGraph, data: dict[str, Any], where: str) -> None:
    source = _take(data, "source", str, where)
    target = _take(data, "target", str, where)
    source_field = _take(data, "source_field", str, where)
    target_field = _take(data, "target_field", str, where)
    wire_type = _take_type(data, "type", where)
    for end in (source, target):
        if end not in graph.nx:
            raise ArtifactError(f"{where}: no node '{end}'")
    outputs = [p.name for p in graph.node(source).outputs()]
    if source_field not in outputs:
        raise ArtifactError(
            f"{where}: '{source}' has no output '{source_field}'; it has {', '.join(outputs)}"
        )
    if any(w.target_field == target_field for _, w in graph.incoming(target)):
        raise ArtifactError(f"{where}: '{target}.{target_field}' is wired twice")
    graph.connect(source, source_field, target, target_field)
    wired = next(w for _, w in graph.incoming(target) if w.target_field == target_field)
    if wired.type != wire_type:
        raise ArtifactError(
            f"{where}: the edge says {wire_type}, but '{source}.{source_field}' is {wired.type}"
        )


def _params_from_json(data: dict[str, Any], key: str) -> StepParams:
    where = f"program: params '{key}'"
    demos = []
    for number, item in enumerate(_take(data, "demos", list, where), start=1):
        demo = _object(item, f"{where}: demo {number}")
        demos.append(Demo(tuple(demo.items())))
    return StepParams(_take_optional(data, "instruction", str, where), tuple(demos))


# files -------------------------------------------------------------------------------------------


def artifact_to_json(artifact: Artifact) -> dict[str, Any]:
    """The artifact as the JSON object `write_artifact` writes."""
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": artifact.created,
        "lm": artifact.lm,
        "backend": artifact.backend,
        "datasets": dict(artifact.datasets),
        "metric": artifact.metric,
        "passes": list(artifact.passes),
        "source": artifact.source,
        "program": graph_to_json(artifact.program),
    }


def write_artifact(path: str | os.PathLike[str], artifact: Artifact) -> None:
    """Write the artifact as one JSON file, atomically: a reader sees the old file or the new one.

    Raises `ValueError` for a graph that fails `verify()`, so no unreadable artifact is written.
    """
    problems = artifact.program.verify()
    if problems:
        raise ValueError(
            "not writing an artifact of a malformed program graph: "
            + "; ".join(p.message for p in problems)
        )
    folder = Path(path).resolve().parent
    portable = _rebase(artifact.program, lambda base: os.path.relpath(base, folder))
    data = artifact_to_json(replace(artifact, program=portable))
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_atomically(Path(path), text.encode("utf-8"))


def _rebase(graph: ProgramGraph, move: Callable[[str], str]) -> ProgramGraph:
    """A copy whose index folders are moved: corpus paths in an artifact are relative to the
    artifact's own folder, so a project folder can move with its artifacts."""
    moved = graph.copy()
    moved.indexes = {n: replace(ref, base=move(ref.base)) for n, ref in graph.indexes.items()}
    return moved


_TOP_LEVEL_KINDS: dict[str, type] = {
    "created": str,
    "lm": str,
    "backend": str,
    "datasets": dict,
    "passes": list,
    "source": str,
    "program": dict,
}


def read_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Read and check an artifact written by `write_artifact`.

    Raises `ArtifactError`, naming the file, for anything that makes it unusable.
    """
    name = os.fspath(path)
    data = _read_json(name)
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
    missing = [key for key in (*_TOP_LEVEL_KINDS, "metric") if key not in data]
    if missing:
        raise ArtifactError(
            f"{name}: an incomplete artifact: missing {', '.join(repr(m) for m in missing)}"
        )
    try:
        for key, kind in _TOP_LEVEL_KINDS.items():
            _take(data, key, kind, name)
        datasets = data["datasets"]
        for dataset, digest in datasets.items():
            if not isinstance(digest, str):
                raise ArtifactError(
                    f"{name}: dataset '{dataset}' should have a sha256 text, found {_what(digest)}"
                )
        metric = _take_optional(data, "metric", dict, name)
        folder = Path(name).resolve().parent
        graph = _rebase(
            graph_from_json(data["program"]), lambda base: os.path.normpath(folder / base)
        )
    except ArtifactError as error:
        message = str(error)
        raise ArtifactError(message if message.startswith(name) else f"{name}: {message}") from None
    problems = graph.verify()
    if problems:
        raise ArtifactError(
            f"{name}: the program graph is not well-formed: "
            + "; ".join(p.message for p in problems)
        )
    return Artifact(
        program=graph,
        source=data["source"],
        lm=data["lm"],
        backend=data["backend"],
        datasets=dict(datasets),
        metric=metric,
        passes=list(data["passes"]),
        created=data["created"],
    )


def _read_json(name: str) -> Any:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ArtifactError(f"{name}: is a folder, expected an artifact .json file") from None
    except UnicodeDecodeError as error:
        raise ArtifactError(f"{name}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise ArtifactError(f"{name}: cannot read it ({error.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ArtifactError(
            f"{name}: not an lmc artifact: invalid JSON at line {error.lineno}, "
            f"column {error.colno} ({error.msg}); the file may be truncated"
        ) from None


# programs ----------------------------------------------------------------------------------------


def is_artifact_path(path: str | os.PathLike[str]) -> bool:
    """Whether a program file argument names an artifact (`.json`) rather than `.lmp` text."""
    return os.fspath(path).lower().endswith(".json")


def program_from_artifact(
    artifact: Artifact, name: str | None = None, file: str = "<artifact>"
) -> Program:
    """The artifact's program: its compiled graph, and the source declaration that names its
    inputs and outputs. `name`, when given, must be the program the artifact holds."""
    from lmc.syntax.parser import parse

    graph = artifact.program
    if name is not None and name != graph.name:
        raise ArtifactError(f"{file}: the artifact holds program '{graph.name}', not '{name}'")
    try:
        module = parse(artifact.source, f"{file} (source)")
    except LmcError as error:
        reason = error.diagnostics[0].message if error.diagnostics else str(error)
        raise ArtifactError(f"{file}: its .lmp source does not parse: {reason}") from None
    declaration = next((p for p in module.programs() if p.name == graph.name), None)
    if declaration is None:
        raise ArtifactError(f"{file}: its .lmp source does not declare program '{graph.name}'")
    declared = (_fields(declaration.params), _fields(declaration.results))
    wired = (
        [(n.name, n.type) for n in graph.inputs()],
        [(n.name, n.type) for n in graph.outputs()],
    )
    if declared != wired:
        raise ArtifactError(
            f"{file}: its .lmp source declares {graph.name}{_signature_text(*declared)}, "
            f"but its program graph is {graph.name}{_signature_text(*wired)}"
        )
    return Program(graph, _used_by(module, graph.name), (artifact.lm, artifact.backend))


def _fields(specs: tuple[FieldSpec, ...]) -> list[tuple[str, LmType]]:
    return [(f.name, f.type) for f in specs]


def _signature_text(inputs: list[tuple[str, LmType]], outputs: list[tuple[str, LmType]]) -> str:
    def one(fields: list[tuple[str, LmType]]) -> str:
        return ", ".join(f"{name}: {type_}" for name, type_ in fields)

    return f"({one(inputs)}) -> ({one(outputs)})"


def load_program_file(path: str | os.PathLike[str], name: str | None = None) -> Program:
    """The program in a `.lmp` file (`name`, or its only program) or in an artifact `.json`.

    Raises `ArtifactError` for an unusable artifact and `LmcError` for `.lmp` text with errors.
    """
    file = os.fspath(path)
    if is_artifact_path(file):
        return program_from_artifact(read_artifact(file), name, file)
    return select(load_text(Path(file).read_text(encoding="utf-8"), file), name, how="--program ")
