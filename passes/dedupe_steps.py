"""`dedupe-steps`: compute each distinct value once.

Two nodes that do the same thing to the same values are one node: the later one's readers read
the first one instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

from lmc.ir.graph import (
    ConstNode,
    InputNode,
    OutputNode,
    ProgramGraph,
    StepNode,
    StepParams,
    rebuild,
)
from lmc.passes.base import CompileContext


def _sources(program: ProgramGraph, node_id: str, merged: dict[str, str]) -> frozenset[Hashable]:
    """What flows in, and where from, seen through the merges made so far."""
    return frozenset(
        (merged.get(source, source), wire.source_field, wire.target_field)
        for source, wire in program.incoming(node_id)
    )


def merge_duplicates(program: ProgramGraph) -> tuple[ProgramGraph, dict[str, str]]:
    """One sweep in topological order: every duplicate node mapped to the first of its kind.

    Sources are read through the merges already made, so a chain of duplicates (two equal steps
    reading two equal constants) collapses in the same sweep.
    """
    merged: dict[str, str] = {}
    # Node values compare structurally (names and parameter keys aside); StepParams may hold
    # unhashable demo values, so they are compared within a bucket, not hashed.
    buckets: dict[Hashable, list[tuple[str, StepParams | None]]] = {}
    for node in program.topological():
        if isinstance(node, InputNode | OutputNode):
            continue
        # `1 == True == 1.0` in Python: a constant's exact value text keeps them apart.
        exact = repr(node.value) if isinstance(node, ConstNode) else None
        key: Hashable = (node, exact, _sources(program, node.id, merged))
        params = program.params[node.param_key] if isinstance(node, StepNode) else None
        bucket = buckets.setdefault(key, [])
        first = next((kept for kept, kept_params in bucket if kept_params == params), None)
        if first is None:
            bucket.append((node.id, params))
        else:
            merged[node.id] = first
    if not merged:
        return program, merged
    keep = {node_id for node_id in program.node_ids() if node_id not in merged}
    return rebuild(program, keep, merged), merged


@dataclass(frozen=True)
class DedupeStepsPass:
    """Merges steps, retrieves, constants, lists and concats that compute the same value twice.

    Two steps merge when they have the same signature and module, equal learned parameters (one
    parameter key, or equal instructions and demos) and read the same fields of the same sources
    into the same inputs; retrieves when they read one index with one `k` for the same query;
    constants when they hold the same value of the same type. The first (in topological order)
    stays and the others' readers read it. Safe because such two nodes lower to the very same LM
    request (or computation), which the runtime answers identically (the response cache keys on
    the request): the second call could only repeat the first. Repeated to a fixpoint, since one
    merge can make two readers duplicates. Makes no LM call.
    """

    name: ClassVar[str] = "dedupe-steps"
    keeps_outputs: ClassVar[bool] = True

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        return 0

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        current = program.copy()
        nodes = calls = 0
        while True:
            before = current
            current, merged = merge_duplicates(current)
            if not merged:
                break
            for dropped, kept in merged.items():
                nodes += 1
                node = before.node(dropped)
                if isinstance(node, StepNode):
                    # A voted step or an agent makes several calls a run, all saved.
                    calls += node.most_calls
                    saved = _calls(node.most_calls)
                    context.say(f"merged step {dropped} into {kept}: saves {saved} per run")
                else:
                    context.say(f"merged {dropped} into {kept}")
        context.say(
            f"dedupe-steps: {nodes} node{'' if nodes == 1 else 's'} merged, "
            f"saving {_calls(calls)} per run"
        )
        return current


def _calls(count: int) -> str:
    return f"{count} LM call{'' if count == 1 else 's'}"
