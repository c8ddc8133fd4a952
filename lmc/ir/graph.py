"""The typed program graph every pass and backend works on.

Nodes are frozen values (program inputs and outputs, LM steps, retrieval, and the small value
operators of the language); an edge carries one field from a source node's output to a target
node's input, with its type. Loops are already unrolled: unrolled copies of a step share one
parameter key, so what a pass learns for one copy holds for all.

Only `ProgramGraph` mutates its graph; passes build a new graph with `copy()`. It keeps nodes and
wires in plain dicts shaped as networkx's `MultiDiGraph` keeps them (the same iteration orders),
and hands a networkx view to the algorithms that need one (`.nx`): `lmc check` and `lmc fmt`,
which need none, do not pay the tenth of a second that importing networkx costs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from lmc.diagnostics import NO_SPAN, Diagnostic, Span, span_field
from lmc.signatures import (
    NO_OPTIONS,
    TRAJECTORY,
    FieldSpec,
    FunctionSpec,
    ModuleKind,
    SignatureSpec,
    StepOptions,
)
from lmc.types import PASSAGES, STR, ListOf, LmType, accepts, describe

if TYPE_CHECKING:
    import networkx as nx

ConstValue = str | int | float | bool
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    type: LmType


@dataclass(frozen=True, slots=True)
class Node:
    """What every node has: a name, which is its id unless its kind says otherwise, and the span
    of source it came from. Equality ignores both (names are like variables, spans are
    presentation); a kind whose name is part of the program (inputs, outputs) redeclares it."""

    name: str = field(compare=False)
    span: Span = field(default=NO_SPAN, compare=False, hash=False, repr=False, kw_only=True)
    # Whether running the node calls out (an LM, an index) rather than computing a value: the
    # runtime runs those on worker threads, and they are what a program's cost is made of.
    calls_out: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return self.name

    def inputs(self) -> tuple[Port, ...]:
        return ()

    def outputs(self) -> tuple[Port, ...]:
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True, slots=True)
class InputNode(Node):
    """A program parameter."""

    name: str
    type: LmType

    @property
    def id(self) -> str:
        return f"in:{self.name}"

    def outputs(self) -> tuple[Port, ...]:
        return (Port("value", self.type),)


@dataclass(frozen=True, slots=True)
class OutputNode(Node):
    """A program result."""

    name: str
    type: LmType

    @property
    def id(self) -> str:
        return f"out:{self.name}"

    def inputs(self) -> tuple[Port, ...]:
        return (Port("value", self.type),)

    def outputs(self) -> tuple[Port, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class StepNode(Node):
    """One LM step: a signature run as `predict`, `chain_of_thought` or a `react` agent (which
    calls the LM once per iteration and its tools in between), with its options."""

    signature: SignatureSpec
    module: ModuleKind
    # Which learnable parameters the step reads; copies of one step share a key.
    param_key: str = field(compare=False)
    options: StepOptions = NO_OPTIONS
    calls_out: ClassVar[bool] = True

    def inputs(self) -> tuple[Port, ...]:
        return tuple(Port(f.name, f.type) for f in self.signature.inputs)

    def outputs(self) -> tuple[Port, ...]:
        return tuple(Port(f.name, f.type) for f in self.signature.outputs_for(self.module))

    def demo_fields(self) -> list[str]:
        """What a demo of the step gives: its inputs, then an agent's trajectory, then its
        outputs (a chain of thought's reasoning among them)."""
        trajectory = [TRAJECTORY] if self.module == "react" else []
        outputs = self.signature.outputs_for(self.module)
        return [f.name for f in self.signature.inputs] + trajectory + [f.name for f in outputs]

    @property
    def most_calls(self) -> int:
        """At most how many LM calls one run of the step makes, repairs aside: an agent's
        iterations and its answer, or a step's samples."""
        if self.module == "react":
            return self.options.max_iters + 1
        return self.options.n


@dataclass(frozen=True, slots=True)
class FunctionNode(Node):
    """One call of a Python function the program declares, on the values flowing in."""

    function: FunctionSpec
    calls_out: ClassVar[bool] = True

    def inputs(self) -> tuple[Port, ...]:
        return tuple(Port(f.name, f.type) for f in self.function.signature.inputs)

    def outputs(self) -> tuple[Port, ...]:
        return tuple(Port(f.name, f.type) for f in self.function.signature.outputs)


@dataclass(frozen=True, slots=True)
class RetrieveNode(Node):
    """Top-k passages from an index for a query."""

    index: str
    k: int
    calls_out: ClassVar[bool] = True

    def inputs(self) -> tuple[Port, ...]:
        return (Port("query", STR),)

    def outputs(self) -> tuple[Port, ...]:
        return (Port("passages", PASSAGES),)


@dataclass(frozen=True, slots=True)
class ConstNode(Node):
    """A literal value."""

    value: ConstValue
    type: LmType

    def outputs(self) -> tuple[Port, ...]:
        return (Port("value", self.type),)


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    """`[a, b, ...]` built from values that flow in."""

    size: int
    type: ListOf

    def inputs(self) -> tuple[Port, ...]:
        return tuple(Port(f"item{i}", self.type.item) for i in range(self.size))

    def outputs(self) -> tuple[Port, ...]:
        return (Port("value", self.type),)


@dataclass(frozen=True, slots=True)
class ConcatNode(Node):
    """`a + b` on two lists."""

    type: ListOf

    def inputs(self) -> tuple[Port, ...]:
        return (Port("left", self.type), Port("right", self.type))

    def outputs(self) -> tuple[Port, ...]:
        return (Port("value", self.type),)


# Every kind of node; each table that dispatches on node kind covers exactly these.
NODE_KINDS: tuple[type[Node], ...] = (
    InputNode,
    OutputNode,
    StepNode,
    FunctionNode,
    RetrieveNode,
    ConstNode,
    ListNode,
    ConcatNode,
)


@dataclass(frozen=True, slots=True)
class Wire:
    """One field flowing along an edge: `source_field` of the source into `target_field`."""

    source_field: str
    target_field: str
    type: LmType
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Demo:
    """One worked example for a step: values for (some of) its input and output fields."""

    fields: tuple[tuple[str, Any], ...]


# How a pool's demos are ranked against a call's inputs: the index kinds that rank text.
NEAREST_KINDS = ("bm25", "embeddings")


@dataclass(frozen=True, slots=True)
class NearestDemos:
    """Demos chosen per call: for each run of the step, the `k` demos of `pool` whose input
    fields are nearest the call's inputs (ranked by `kind`, one of `NEAREST_KINDS`) are shown
    after its fixed demos. The pool is part of the program; its index is rebuilt from it."""

    k: int
    pool: tuple[Demo, ...]
    kind: str = "bm25"


@dataclass(frozen=True, slots=True)
class StepParams:
    """What a pass may learn for a step: an instruction that overrides the signature's, demos,
    and a pool of demos to choose from per input."""

    instruction: str | None = None
    demos: tuple[Demo, ...] = ()
    nearest: NearestDemos | None = None


@dataclass(frozen=True, slots=True)
class IndexRef:
    """A corpus a program retrieves from. `path` is absolute: the text form writes it relative
    to the file it is written in, and reading resolves it against that file's folder.

    A Python retriever is named by its class (`path` is `module:Class`), and a program built in
    Python is `bound` to the object it was built with: two objects of one class over different
    documents each answer for their own program and step. Like a step's spans, the object is not
    part of the program's text or its equality; a program read from text makes its retriever."""

    name: str
    kind: str
    path: str
    text_field: str = "text"
    bound: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MetricRef:
    """`metric NAME(FIELD)`: the builtin metric the program is scored with unless told."""

    name: str
    field: str


class ProgramGraph:
    """A program as a graph of frozen nodes. Equality is structural: spans and step names aside."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}
        # base -> the first n that `fresh_id` has not found taken (nodes are never removed).
        self._fresh_from: dict[str, int] = {}
        # source -> target -> target field -> wire, and the same by target: networkx's layout.
        self._succ: dict[str, dict[str, dict[str, Wire]]] = {}
        self._pred: dict[str, dict[str, dict[str, Wire]]] = {}
        self._nx: nx.MultiDiGraph[str] | None = None
        # Values computed from the nodes and wires alone (a dependency order, the runtime's plan),
        # by name; emptied by every change to nodes or wires. `params` is not part of them.
        self._derived: dict[str, Any] = {}
        self.indexes: dict[str, IndexRef] = {}
        self.params: dict[str, StepParams] = {}
        self.metric: MetricRef | None = None

    # building ------------------------------------------------------------------------------------

    def add(self, node: Node) -> str:
        if node.id in self._nodes:
            raise ValueError(f"node {node.id!r} is already in the graph")
        self._nodes[node.id] = node
        self._succ[node.id], self._pred[node.id] = {}, {}
        self._structure_changed()
        if isinstance(node, StepNode):
            self.params.setdefault(node.param_key, StepParams())
        return node.id

    def connect(
        self,
        source: str,
        source_field: str,
        target: str,
        target_field: str,
        span: Span | None = None,
    ) -> None:
        port = {p.name: p for p in self.node(source).outputs()}[source_field]
        wire = Wire(source_field, target_field, port.type, span or self.node(target).span)
        self._succ[source].setdefault(target, {})[target_field] = wire
        self._pred[target].setdefault(source, {})[target_field] = wire
        self._structure_changed()

    def _structure_changed(self) -> None:
        self._nx = None
        self._derived.clear()

    def derived(self, name: str, compute: Callable[[], T]) -> T:
        """`compute()`, made once until the graph's nodes or wires change: for what depends on
        its structure alone (never on `params`, which may be replaced without this graph knowing).
        """
        if name not in self._derived:
            self._derived[name] = compute()
        value: T = self._derived[name]
        return value

    def fresh_id(self, base: str) -> str:
        """`base`, or `base@2`, `base@3`, ... (`@` never occurs in a name the user writes)."""
        if base not in self._nodes:
            return base
        # Every `base@k` below the one last found is taken still: an unrolled loop of thousands of
        # copies would otherwise try them all each time.
        n = self._fresh_from.get(base, 2)
        while f"{base}@{n}" in self._nodes:
            n += 1
        self._fresh_from[base] = n
        return f"{base}@{n}"

    def copy(self) -> ProgramGraph:
        other = ProgramGraph(self.name)
        other._nodes = dict(self._nodes)
        other._succ = {
            u: {v: dict(keys) for v, keys in out.items()} for u, out in self._succ.items()
        }
        other._pred = {
            v: {u: dict(keys) for u, keys in in_.items()} for v, in_ in self._pred.items()
        }
        other.indexes = dict(self.indexes)
        other.params = dict(self.params)
        other.metric = self.metric
        return other

    # reading -------------------------------------------------------------------------------------

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]

    def nodes(self) -> Iterator[Node]:
        yield from self._nodes.values()

    def node_ids(self) -> list[str]:
        """Every node's id, in the order the nodes were added."""
        return list(self._nodes)

    def topological(self, key: Callable[[str], Any] | None = None) -> list[Node]:
        """Nodes in dependency order; among nodes ready at once, the least by `key` (default:
        the id) first, then the earliest added: networkx's lexicographical topological sort."""
        order = self._sorted_ids(key) if key is not None else self._default_order()
        if len(order) != len(self._nodes):
            raise ValueError(f"{self.name} has a cycle; it has no dependency order")
        return [self._nodes[n] for n in order]

    def _default_order(self) -> list[str]:
        order: list[str] = self.derived("topological", lambda: self._sorted_ids(None))
        return order

    def is_acyclic(self) -> bool:
        return len(self._sorted_ids(None)) == len(self._nodes)

    def _sorted_ids(self, key: Callable[[str], Any] | None) -> list[str]:
        rank = key or (lambda node_id: node_id)
        added = {node_id: i for i, node_id in enumerate(self._nodes)}
        waiting = {v: sum(map(len, in_.values())) for v, in_ in self._pred.items()}
        ready = [(rank(v), added[v], v) for v, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node_id = heapq.heappop(ready)[2]
            order.append(node_id)
            for target, keys in self._succ[node_id].items():
                waiting[target] -= len(keys)
                if waiting[target] == 0:
                    heapq.heappush(ready, (rank(target), added[target], target))
        return order

    def steps(self) -> list[StepNode]:
        return [n for n in self.topological() if isinstance(n, StepNode)]

    def inputs(self) -> list[InputNode]:
        return [n for n in self.nodes() if isinstance(n, InputNode)]

    def outputs(self) -> list[OutputNode]:
        return [n for n in self.nodes() if isinstance(n, OutputNode)]

    def incoming(self, node_id: str) -> list[tuple[str, Wire]]:
        return [(u, w) for u, keys in self._pred[node_id].items() for w in keys.values()]

    def outgoing(self, node_id: str) -> list[tuple[str, Wire]]:
        return [(v, w) for v, keys in self._succ[node_id].items() for w in keys.values()]

    def edges(self) -> Iterator[tuple[str, str, Wire]]:
        for u, out in self._succ.items():
            for v, keys in out.items():
                for wire in keys.values():
                    yield u, v, wire

    @property
    def nx(self) -> nx.MultiDiGraph[str]:
        """The graph as a networkx `MultiDiGraph` (node attribute `node`, edge key the target
        field, edge attribute `wire`), for networkx's algorithms; made on first use after a
        change. Never mutate it: it does not write back."""
        if self._nx is None:
            import networkx as nx

            graph: nx.MultiDiGraph[str] = nx.MultiDiGraph()
            for node_id, node in self._nodes.items():
                graph.add_node(node_id, node=node)
            for u, v, wire in self.edges():
                graph.add_edge(u, v, key=wire.target_field, wire=wire)
            self._nx = graph
        return self._nx

    # checking ------------------------------------------------------------------------------------

    def verify(self) -> list[Diagnostic]:
        """Everything that must hold of a well-formed program; empty when it does.

        Run before and after every pass.
        """
        problems: list[Diagnostic] = []
        for cycle in self._cycles():
            names = " -> ".join([*cycle, cycle[0]])
            problems.append(Diagnostic(self.node(cycle[0]).span, f"cycle: {names}"))
        keys_signatures: dict[str, tuple[SignatureSpec, ModuleKind, StepOptions]] = {}
        for node in self.nodes():
            wired = {w.target_field: (u, w) for u, w in self.incoming(node.id)}
            for port in node.inputs():
                if port.name not in wired:
                    problems.append(
                        Diagnostic(node.span, f"{node.id}: nothing flows into '{port.name}'")
                    )
                    continue
                source, wire = wired.pop(port.name)
                if not accepts(port.type, wire.type):
                    problems.append(
                        Diagnostic(
                            wire.span,
                            f"type mismatch: expected {describe(port.type)} for '{port.name}', "
                            f"found {describe(wire.type)} from {source}",
                        )
                    )
            for extra in wired:
                problems.append(Diagnostic(node.span, f"{node.id}: no input named '{extra}'"))
            if isinstance(node, StepNode):
                how = (node.signature, node.module, node.options)
                if keys_signatures.setdefault(node.param_key, how) != how:
                    problems.append(
                        Diagnostic(node.span, f"{node.id} shares parameters with a different step")
                    )
            if isinstance(node, RetrieveNode) and node.index not in self.indexes:
                problems.append(Diagnostic(node.span, f"unknown index '{node.index}'"))
        nowhere = Span("<ir>", 0, 0, 0, 0)
        for key in set(self.params) - set(keys_signatures):
            problems.append(Diagnostic(nowhere, f"parameters '{key}' are unused"))
        read = {n.index for n in self.nodes() if isinstance(n, RetrieveNode)}
        for index in set(self.indexes) - read:
            problems.append(Diagnostic(nowhere, f"index '{index}' is unused"))
        problems += _signature_problems(signature for signature, _, _ in keys_signatures.values())
        return problems

    # equality ------------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProgramGraph):
            return NotImplemented
        if (self.indexes, self.metric) != (other.indexes, other.metric):
            return False
        if len(self) != len(other):
            return False
        from networkx.algorithms.isomorphism import MultiDiGraphMatcher

        mine, theirs = self._step_labels(), other._step_labels()
        matcher = MultiDiGraphMatcher(
            self.nx,
            other.nx,
            node_match=lambda a, b: (
                a["node"] == b["node"] and mine.get(a["node"].id) == theirs.get(b["node"].id)
            ),
            edge_match=lambda a, b: _wires(a) == _wires(b),
        )
        return any(self._same_params(other, m) for m in matcher.isomorphisms_iter())

    def _step_labels(self) -> dict[str, tuple[StepParams, int]]:
        """What a step's match must share besides the node: its learned parameters and how many
        steps share them. Matching on these up front keeps the search from trying every way to
        pair up look-alike steps (loop copies) only to find their parameters differ."""
        sharing = Counter(step.param_key for step in self.steps())
        return {
            step.id: (self.params[step.param_key], sharing[step.param_key]) for step in self.steps()
        }

    def _same_params(self, other: ProgramGraph, mapping: Mapping[str, str]) -> bool:
        keys: dict[str, str] = {}
        for mine, theirs in mapping.items():
            a, b = self.node(mine), other.node(theirs)
            if isinstance(a, StepNode) and isinstance(b, StepNode):
                if keys.setdefault(a.param_key, b.param_key) != b.param_key:
                    return False
        if len(set(keys.values())) != len(keys):
            return False
        return all(self.params[a] == other.params[b] for a, b in keys.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ProgramGraph({self.name!r}, {len(self)} nodes)"

    def _cycles(self) -> list[list[str]]:
        """One cycle, if there is any (none in a program the checker passed)."""
        if self.is_acyclic():
            return []
        import networkx as nx

        simple: nx.DiGraph[str] = nx.DiGraph(self.nx)
        return [list(c) for c in nx.simple_cycles(simple)][:1]


# Graph surgery for the structural passes: `ProgramGraph` has no way to remove a node, so a pass
# that drops or fuses nodes builds the new graph out of the nodes and wires it keeps.

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
    graph.metric = program.metric
    return graph


def rebuild(
    program: ProgramGraph, keep: Collection[str], rewire: Mapping[str, str] | None = None
) -> ProgramGraph:
    """`program` with only the nodes in `keep` (in their original order) and the wires between
    them; a wire out of a dropped node listed in `rewire` leaves the node it maps to instead."""
    moved = rewire or {}
    nodes = [program.node(node_id) for node_id in program.node_ids() if node_id in keep]
    wires: list[WireSpec] = []
    for source, target, wire in program.edges():
        if target not in keep:
            continue
        source = moved.get(source, source)
        if source not in keep:
            raise ValueError(f"{target} reads {source}, which is neither kept nor rewired")
        wires.append((source, wire.source_field, target, wire.target_field, wire.span))
    return assemble(program, nodes, wires)


def _signature_problems(signatures: Iterable[SignatureSpec]) -> list[Diagnostic]:
    """What keeps the steps' signatures from being declared in one `.lmp` file: one name for two
    different signatures, or an unnamed one with more than its inline `"a -> b"` form says."""
    problems: list[Diagnostic] = []
    named: dict[str, SignatureSpec] = {}
    for signature in signatures:
        if signature.name is None:
            fields = signature.inputs + signature.outputs
            if signature.instruction is not None or any(f.desc is not None for f in fields):
                problems.append(
                    Diagnostic(
                        signature.span,
                        f"signature {signature.display_name} has no name but an instruction or "
                        "field descriptions",
                    )
                )
        elif named.setdefault(signature.name, signature) != signature:
            problems.append(
                Diagnostic(signature.span, f"two different signatures are named {signature.name}")
            )
    return problems


def _copied(
    adjacency: dict[str, dict[str, dict[str, Wire]]],
) -> dict[str, dict[str, dict[str, Wire]]]:
    return {u: {v: dict(keys) for v, keys in out.items()} for u, out in adjacency.items()}


def _wires(edges: Mapping[str, Mapping[str, Any]]) -> set[Wire]:
    return {d["wire"] for d in edges.values()}


def field_port(spec: FieldSpec) -> Port:
    return Port(spec.name, spec.type)
