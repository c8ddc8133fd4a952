"""The layout shows the architecture: no import cycle between lmc's packages, counting imports
inside function bodies (a lazy import is still a dependency), but not `TYPE_CHECKING` ones."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
# Where each part of the `lmc` package lives (lmc.passes and lmc.backends are mapped folders).
FOLDERS = {"lmc": ROOT / "lmc", "lmc.passes": ROOT / "passes", "lmc.backends": ROOT / "backends"}


def modules() -> Iterator[tuple[str, Path]]:
    for prefix, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            yield ".".join([prefix, *parts]), path


def package(module: str) -> str:
    """`lmc.ir.graph` -> `lmc.ir`; a top-level module (`lmc.files`) is a unit of its own."""
    return ".".join(module.split(".")[:2])


def imported(tree: ast.Module) -> Iterator[str]:
    for_types_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in for_types_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"lmc.{a.name}" for a in node.names] if node.module == "lmc" else []
            yield from names or [node.module]
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_no_import_cycle_between_packages() -> None:
    graph: nx.DiGraph[str] = nx.DiGraph()
    for module, path in modules():
        for name in imported(ast.parse(path.read_text(encoding="utf-8"))):
            if name.startswith("lmc.") and package(name) != package(module):
                graph.add_edge(package(module), package(name), why=f"{module} imports {name}")

    cycles = [
        [graph.edges[a, b]["why"] for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True)]
        for cycle in nx.simple_cycles(graph)
    ]

    assert cycles == []


def test_a_stage_never_imports_the_command_line() -> None:
    for module, path in modules():
        if package(module) != "lmc.cli":
            names = set(imported(ast.parse(path.read_text(encoding="utf-8"))))
            assert not {n for n in names if n.startswith("lmc.cli")}, module
