"""`dead-steps`: drop every node whose value never reaches a program output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from lmc.ir.graph import InputNode, OutputNode, ProgramGraph, rebuild
from lmc.passes.base import CompileContext, calls_per_run


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
    keeps_outputs: ClassVar[bool] = True

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        return 0

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        live = live_nodes(program)
        dead = [n.id for n in program.topological() if n.id not in live]
        result = rebuild(program, live)
        if dead:
            # Counted as calls, not steps: a voted step or an agent makes several a run.
            calls = calls_per_run(program) - calls_per_run(result)
            context.say(
                f"dead-steps: removed {', '.join(dead)}, "
                f"saving {calls} LM call{'' if calls == 1 else 's'} per run"
            )
        else:
            context.say("dead-steps: nothing to remove")
        return result
