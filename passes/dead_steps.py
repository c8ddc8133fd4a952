"""`dead-steps`: drop every node whose value never reaches a program output.

Also home to the small graph-surgery helpers the structural passes share (`assemble`,
`rebuild`): `ProgramGraph` has no way to remove a node, so a pass that drops nodes builds the new
graph from scratch out of the nodes and wires it keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from lmc.diagnostics import Span
from lmc.ir import InputNode, Node, OutputNode, ProgramGraph, RetrieveNode, StepNode, StepParams
from lmc.passes.base import CompileContext

# (source id, source field, target id, target field, span): one wire to connect.
WireSpec = tuple[str, str, str, str, Span]


def assemble(
    program: ProgramGraph,
    nodes: Iterable[Node],
    wires: Iterable[WireSpec],
    params: Mapping[str, StepParams] | None = None,
) -> ProgramGraph:
    """A new graph named like `program` with exactly `nodes` (in that order) and `wires`.

    Parameters come from `params`, else from `program`; only the keys a step uses are kept, and
    only the indexes a retrieve reads, so the result verifies without dangling entries.
    """
    graph = ProgramGraph(program.name)
    for node in nodes:
        graph.add(node)
    for source, source_field, target, target_field, span in wires:
        graph.connect(source, source_field, target, target_field, span)
    learned = {**program.params, **(params or {})}
    used_keys = {n.param_key for n in graph.nodes() if isinstance(n, StepNode)}
    graph.params = {key: learned.get(key, StepParams()) for key in sorted(used_keys)}
    used_indexes = {n.index for n in graph.nodes() if isinstance(n, RetrieveNode)}
    graph.indexes = {k: v for k, v in program.indexes.items() if k in used_indexes}
    return graph


def rebuild(
    program: ProgramGraph, keep: Collection[str], rewire: Mapping[str, str] | None = None
) -> ProgramGraph:
    """`program` with only the nodes in `keep` (in their original order) and the wires between
    them; a wire out of a dropped node listed in `rewire` leaves the node it maps to instead."""
    moved = rewire or {}
    nodes = [program.node(node_id) for node_id in program.nx.nodes if node_id in keep]
    wires: list[WireSpec] = []
    for source, target, wire in program.edges():
        if target not in keep:
            continue
        source = moved.get(source, source)
        if source not in keep:
            raise ValueError(f"{target} reads {source}, which is neither kept nor rewired")
        wires.append((source, wire.source_field, target, wire.target_field, wire.span))
    return assemble(program, nodes, wires)


def live_nodes(program: ProgramGraph) -> set[str]:
    """Program inputs and outputs, and every node some output depends on."""
    live: set[str] = set()
    for node in program.nodes():
        if isinstance(node, InputNode):
            live.add(node.id)
        elif isinstance(node, OutputNode):
            live.add(node.id)
            live |= nx.ancestors(program.nx, node.id)
    return live


@dataclass(frozen=True)
class DeadStepsPass:
    """Removes every step, retrieve, constant, list and concat no program output depends on.

    Safe because a node's value reaches the outputs only along its out-edges: when no path leads
    to an output, dropping it (and the parameters and indexes only it used) leaves every output
    exactly as it was, and saves its LM calls. Program inputs stay even when unused: they are the
    program's interface. Makes no LM call.
    """

    name: ClassVar[str] = "dead-steps"

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        return 0

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        live = live_nodes(program)
        dead = [n.id for n in program.topological() if n.id not in live]
        steps = sum(1 for node_id in dead if isinstance(program.node(node_id), StepNode))
        if dead:
            context.say(
                f"dead-steps: removed {', '.join(dead)}, "
                f"saving {steps} LM call{'' if steps == 1 else 's'} per run"
            )
        else:
            context.say("dead-steps: nothing to remove")
        return rebuild(program, live)
