"""The program graph as a picture, laid out by Graphviz's `dot`.

Steps are drawn by kind (predict, chain of thought, retrieve), every edge names the field it
carries and its type, and unrolled loop copies share a colour and a dotted "same parameters" link.
"""

from __future__ import annotations

import html
import itertools
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import graphviz

from lmc.errors import InputError, RunError
from lmc.files import write_atomically
from lmc.ir.graph import (
    ConcatNode,
    ConstNode,
    FunctionNode,
    InputNode,
    ListNode,
    Node,
    OutputNode,
    ProgramGraph,
    RetrieveNode,
    StepNode,
    Wire,
)
from lmc.syntax.printer import constant

KIND_COLOURS = {"predict": "#fff3e0", "chain_of_thought": "#f3e5f5"}
COPY_COLOURS = ("#ffe0b2", "#e1bee7", "#c8e6c9", "#ffcdd2", "#d1c4e9", "#b2dfdb")
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


class RenderError(RunError):
    """The picture could not be made (Graphviz missing or failing); not the user's input."""


def to_dot(graph: ProgramGraph) -> graphviz.Digraph:
    dot = graphviz.Digraph(graph.name)
    inputs = ", ".join(f"{n.name}: {n.type}" for n in graph.inputs())
    outputs = ", ".join(f"{n.name}: {n.type}" for n in graph.outputs())
    dot.attr(
        label=f"program {graph.name}({inputs}) -> ({outputs})",
        labelloc="t",
        fontsize="16",
        fontname="Helvetica",
        rankdir="TB",
        nodesep="0.4",
        ranksep="0.5",
    )
    dot.attr("node", fontname="Helvetica", fontsize="11", style="filled", penwidth="1.2")
    dot.attr("edge", fontname="Helvetica", fontsize="9", color="#546e7a", fontcolor="#37474f")
    copies = _copies(graph)
    for node in graph.nodes():
        dot.node(_safe(node.id), **_node_attributes(node, copies))
    for source, target, wire in graph.edges():
        dot.edge(_safe(source), _safe(target), label=f" {_edge_label(wire)} ")
    for group in copies.values():
        for first, second in itertools.pairwise(group):
            dot.edge(
                _safe(first),
                _safe(second),
                style="dotted",
                arrowhead="none",
                constraint="false",
                color="#8e24aa",
                label=" same parameters ",
                fontcolor="#8e24aa",
            )
    return dot


def _edge_label(wire: Wire) -> str:
    """The field an edge carries, `from → into` where the names differ, and its type."""
    source = None if wire.source_field == "value" else wire.source_field
    generic = wire.target_field in ("value", "left", "right") or wire.target_field.startswith(
        "item"
    )
    target = None if generic else wire.target_field
    if source and target and source != target:
        return f"{source} → {target}: {wire.type}"
    return f"{source or target or 'value'}: {wire.type}"


def _copies(graph: ProgramGraph) -> dict[str, list[str]]:
    """Steps that share a parameter key (unrolled loop copies), by key."""
    groups: dict[str, list[str]] = defaultdict(list)
    for step in graph.steps():
        groups[step.param_key].append(step.id)
    return {key: ids for key, ids in groups.items() if len(ids) > 1}


def _node_attributes(node: Node, copies: dict[str, list[str]]) -> dict[str, str]:
    return _ATTRIBUTES[type(node)](node, copies)


def _constant_attributes(node: ConstNode, copies: dict[str, list[str]]) -> dict[str, str]:
    text = constant(node.value)
    if len(text) > 40:
        text = text[:37] + "..."
    return {"label": text, "shape": "note", "fillcolor": "#fafafa", "fontsize": "9"}


def _retrieve_attributes(node: RetrieveNode, copies: dict[str, list[str]]) -> dict[str, str]:
    label = f"<<b>retrieve</b><br/>{html.escape(node.index)}, k={node.k}>"
    return {"label": label, "shape": "cylinder", "fillcolor": "#e0f7fa"}


def _step_attributes(node: StepNode, copies: dict[str, list[str]]) -> dict[str, str]:
    kind = "chain of thought" if node.module == "chain_of_thought" else "predict"
    signature = html.escape(node.signature.display_name)
    rows = [
        f'<tr><td><font point-size="9" color="#616161">{kind}</font></td></tr>',
        f"<tr><td><b>{signature}</b></td></tr>",
        f'<tr><td><font point-size="9">{html.escape(node.param_key)}</font></td></tr>',
    ]
    colour = KIND_COLOURS[node.module]
    group = copies.get(node.param_key)
    if group:
        position = group.index(node.id) + 1
        rows.append(
            f'<tr><td><font point-size="9" color="#6a1b9a">copy {position} of {len(group)}'
            "</font></td></tr>"
        )
        colour = COPY_COLOURS[sorted(copies).index(node.param_key) % len(COPY_COLOURS)]
    label = '<<table border="0" cellspacing="0" cellpadding="1">' + "".join(rows) + "</table>>"
    return {"label": label, "shape": "box", "style": "rounded,filled", "fillcolor": colour}


# How each kind of node is drawn; `tests/ir` checks that every node kind has an entry.
_ATTRIBUTES: dict[type[Node], Callable[[Any, dict[str, list[str]]], dict[str, str]]] = {
    InputNode: lambda node, copies: {
        "label": f"{node.name}\n{node.type}",
        "shape": "oval",
        "fillcolor": "#e8f5e9",
    },
    OutputNode: lambda node, copies: {
        "label": f"{node.name}\n{node.type}",
        "shape": "oval",
        "fillcolor": "#e3f2fd",
        "peripheries": "2",
    },
    StepNode: _step_attributes,
    FunctionNode: lambda node, copies: {
        "label": f"<<b>call</b><br/>{html.escape(node.function.name)}>",
        "shape": "component",
        "fillcolor": "#fff3e0",
    },
    RetrieveNode: _retrieve_attributes,
    ConstNode: _constant_attributes,
    ListNode: lambda node, copies: {
        "label": "[ ]",
        "shape": "box",
        "fillcolor": "#fafafa",
        "fontsize": "9",
    },
    ConcatNode: lambda node, copies: {
        "label": "+",
        "shape": "circle",
        "fillcolor": "#fafafa",
        "width": "0.3",
    },
}


def _safe(node_id: str) -> str:
    # Graphviz treats ':' in a node name as a port separator.
    return node_id.replace(":", "·")


def write_picture(graph: ProgramGraph, path: str | os.PathLike[str]) -> Path:
    """Write the picture (.svg, .png, .pdf) or the DOT text (.dot, .gv), atomically."""
    target = Path(path)
    dot = to_dot(graph)
    suffix = target.suffix.lower()
    if suffix in (".dot", ".gv"):
        data = dot.source.encode()
    elif suffix in FORMATS:
        try:
            data = dot.pipe(format=FORMATS[suffix])
        except graphviz.ExecutableNotFound:
            raise RenderError(
                "Graphviz's `dot` is not installed: install it (Debian: apt-get install "
                "graphviz; macOS: brew install graphviz), or write DOT text with -o graph.dot"
            ) from None
        except graphviz.CalledProcessError as error:
            raise RenderError(f"Graphviz failed: {error.stderr.decode(errors='replace')}") from None
    else:
        raise InputError(f"expected an output ending in .svg, .png, .pdf or .dot; found '{target}'")
    write_atomically(target, data)
    return target
