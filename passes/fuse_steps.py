"""`fuse-steps`: ask for two adjacent steps' work in one LM call, where dev data says it is as good.

A step B that reads only step A's outputs and program inputs can be answered in the same call as
A: one signature with A's inputs and B's, both instructions, and the outputs readers need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from lmc.backends.base import StepView
from lmc.ir.graph import InputNode, ProgramGraph, StepNode, StepParams, WireSpec, assemble
from lmc.passes.base import CompileContext, calls_per_run
from lmc.signatures import NO_OPTIONS, REASONING, FieldSpec, ModuleKind, SignatureSpec

# Float means of equal per-example scores can differ in the last bit; that is not a drop.
_EPSILON = 1e-9


def fusable(program: ProgramGraph, first: str, second: str) -> bool:
    """Whether step `second` reads `first` and otherwise only program inputs, and both run as
    plain steps: an agent's tools, a voted step's samples, a temperature or a token limit say
    how that one step runs, and would not carry over to the two tasks asked at once."""
    a, b = program.node(first), program.node(second)
    if not isinstance(a, StepNode) or not isinstance(b, StepNode) or first == second:
        return False
    if any(s.module == "react" or s.options != NO_OPTIONS for s in (a, b)):
        return False
    sources = [source for source, _ in program.incoming(second)]
    return first in sources and all(
        source == first or isinstance(program.node(source), InputNode) for source in sources
    )


def fusable_pairs(program: ProgramGraph) -> list[tuple[str, str]]:
    """Every (A, B) that `fusable` admits, in topological order of A, then of B."""
    order = {node.id: i for i, node in enumerate(program.topological())}
    pairs: list[tuple[str, str]] = []
    for a in program.steps():
        readers = sorted({target for target, _ in program.outgoing(a.id)}, key=order.__getitem__)
        pairs += [(a.id, b) for b in readers if fusable(program, a.id, b)]
    return pairs


class _Names:
    """Field names of the fused signature: each one once, a clash renamed `name_2`, ..."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)

    def claim(self, name: str) -> str:
        fresh, n = name, 2
        while fresh in self.taken:
            fresh, n = f"{name}_{n}", n + 1
        self.taken.add(fresh)
        return fresh


def _param_key(
    program: ProgramGraph, base: str, signature: SignatureSpec, module: ModuleKind
) -> str:
    """`base`, `base@2`, ...: the key of an equal fused step (fusing loop copies alike keeps
    them sharing parameters, as the copies did), else the first key not in use."""
    users = {s.param_key: (s.signature, s.module) for s in program.steps()}
    key, n = base, 2
    while key in program.params and users.get(key) != (signature, module):
        key, n = f"{base}@{n}", n + 1
    return key


def fuse(program: ProgramGraph, first: str, second: str) -> tuple[ProgramGraph, str]:
    """A new graph where the fusable pair `first` -> `second` is one step; and that step's id."""
    if not fusable(program, first, second):
        raise ValueError(f"{second} does not read only {first} and program inputs")
    a, b = program.node(first), program.node(second)
    assert isinstance(a, StepNode)
    assert isinstance(b, StepNode)
    module: ModuleKind = (
        "chain_of_thought" if "chain_of_thought" in (a.module, b.module) else "predict"
    )
    fields = _Fields(program, a, b, module)
    signature = _fused_signature(
        program,
        a,
        b,
        inputs=tuple(fields.inputs),
        outputs=fields.outputs,
        instruction=_instruction(program, a, b, fields.handed_over()),
        span=a.signature.span,
    )
    fused_id = program.fresh_id(f"{first}_then_{second}")
    key = _param_key(program, f"{a.param_key}_then_{b.param_key}", signature, module)
    fused = StepNode(fused_id, signature, module, key, span=a.span)
    nodes = [
        fused if node_id == first else program.node(node_id)
        for node_id in program.node_ids()
        if node_id != second
    ]
    fresh: dict[str, StepParams] = {} if key in program.params else {key: StepParams()}
    return assemble(program, nodes, fields.wires(fused_id), fresh), fused_id


class _Fields:
    """The fused step's fields, and which field of A or B each stands for.

    Inputs: A's, then B's that A does not feed (the same value under the same name and type is
    asked for once). Outputs: A's that something besides B reads, then B's; a name taken twice
    is renamed `name_2`, and B's names win a clash.
    """

    def __init__(self, program: ProgramGraph, a: StepNode, b: StepNode, module: ModuleKind):
        self.program, self.a, self.b = program, a, b
        self.names = _Names({REASONING} if module == "chain_of_thought" else set())
        self.into_a = {w.target_field: (s, w.source_field) for s, w in program.incoming(a.id)}
        self.into_b = {w.target_field: (s, w.source_field) for s, w in program.incoming(b.id)}
        self.internal = {f for f, (s, _) in self.into_b.items() if s == a.id}
        self.inputs: list[FieldSpec] = []
        self.a_in: dict[str, str] = {}
        self.b_in: dict[str, str] = {}
        self._map_inputs()
        self.a_out: dict[str, str] = {}
        self.b_out: dict[str, str] = {}
        self.outputs = self._map_outputs(module)

    def _map_inputs(self) -> None:
        fed_by: dict[str, tuple[tuple[str, str], FieldSpec]] = {}  # fused input -> source, spec
        for spec in self.a.signature.inputs:
            self.a_in[spec.name] = self.names.claim(spec.name)
            self.inputs.append(replace(spec, name=self.a_in[spec.name]))
            fed_by[self.a_in[spec.name]] = (self.into_a[spec.name], spec)
        for spec in self.b.signature.inputs:
            if spec.name in self.internal:
                continue
            same = fed_by.get(spec.name)
            if same is not None and same[0] == self.into_b[spec.name] and same[1].type == spec.type:
                self.b_in[spec.name] = spec.name
                continue
            self.b_in[spec.name] = self.names.claim(spec.name)
            self.inputs.append(replace(spec, name=self.b_in[spec.name]))

    def _map_outputs(self, module: ModuleKind) -> tuple[FieldSpec, ...]:
        a, b = self.a, self.b
        read_elsewhere = {w.source_field for t, w in self.program.outgoing(a.id) if t != b.id}
        self.b_out = {spec.name: self.names.claim(spec.name) for spec in b.signature.outputs}
        a_kept: list[FieldSpec] = []
        for spec in a.signature.outputs:
            if spec.name in read_elsewhere:
                self.a_out[spec.name] = self.names.claim(spec.name)
                a_kept.append(replace(spec, name=self.a_out[spec.name]))
        if module == "chain_of_thought":
            # The fused step's one reasoning stands for whichever reasoning was read.
            self.a_out.setdefault(REASONING, REASONING)
            self.b_out.setdefault(REASONING, REASONING)
        b_outputs = (replace(spec, name=self.b_out[spec.name]) for spec in b.signature.outputs)
        return (*a_kept, *b_outputs)

    def handed_over(self) -> list[tuple[str, str]]:
        """(B's input, A's output) for each value A hands to B inside the fused step."""
        return [(f, self.into_b[f][1]) for f in sorted(self.internal)]

    def wires(self, fused_id: str) -> list[WireSpec]:
        """The program's wires, with those into and out of A and B moved to the fused step."""
        first, second = self.a.id, self.b.id
        wires: list[WireSpec] = []
        wired_into_fused: set[str] = set()
        for source, target, wire in self.program.edges():
            sf, tf, span = wire.source_field, wire.target_field, wire.span
            if target == second and source == first:
                continue
            if target in (first, second):
                field = (self.a_in if target == first else self.b_in)[tf]
                if field not in wired_into_fused:
                    wired_into_fused.add(field)
                    wires.append((source, sf, fused_id, field, span))
            elif source in (first, second):
                out = (self.a_out if source == first else self.b_out)[sf]
                wires.append((fused_id, out, target, tf, span))
            else:
                wires.append((source, sf, target, tf, span))
        return wires


def _fused_signature(
    program: ProgramGraph, a: StepNode, b: StepNode, **parts: Any
) -> SignatureSpec:
    """The fused signature, named `FirstThenSecond` from the signatures' names (or the steps'
    keys, for inline ones). A name another, different signature of the program has gets a
    number, so the program can still be written as one `.lmp` file; fusing loop copies alike
    gives equal signatures, which keep one name."""

    def part(step: StepNode) -> str:
        name = step.signature.name or step.param_key
        return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", name))

    base = f"{part(a)}Then{part(b)}"
    named = {s.signature.name: s.signature for s in program.steps()}
    name, n = base, 2
    while name in named and named[name] != SignatureSpec(name=name, **parts):
        name, n = f"{base}{n}", n + 1
    return SignatureSpec(name=name, **parts)


def _instruction(
    program: ProgramGraph, a: StepNode, b: StepNode, internal: list[tuple[str, str]]
) -> str:
    """A's task, then B's. Learned instructions count; demos do not fit the new fields.

    `internal` are B's inputs that A writes (and what A calls them): no field carries them now.
    """
    first = StepView(a.signature, a.module, program.params[a.param_key]).instruction
    second = StepView(b.signature, b.module, program.params[b.param_key]).instruction
    parts = [first, "Then: " + second]
    if internal:
        fields = ", ".join(
            f"`{read}`" if read == written else f"`{read}` (`{written}` above)"
            for read, written in internal
        )
        verb = "it is" if len(internal) == 1 else "they are"
        parts.append(f"Work out {fields} along the way; {verb} not among the inputs.")
    return "\n\n".join(parts)


@dataclass(frozen=True)
class FuseStepsPass:
    """Merges a step B into the step A it reads, when B reads nothing but A and program inputs.

    The fused step takes A's inputs and B's other inputs (one field per value), does A's task then
    B's, and returns B's outputs plus any of A's that another node reads; it starts with fresh
    parameters (A's and B's demos do not fit its fields). This saves one LM call per run but can
    change answers, so each fusion is tried on dev (`context.score`) and kept only if the metric
    drops by at most `tolerance` from the program's own score; greedy, one pair at a time, so a
    chain can fuse into one step. Structurally safe: every input of the fused step was already
    computed before A, so no cycle and no missing value can appear.
    """

    name: ClassVar[str] = "fuse-steps"
    tolerance: float = 0.0

    def projected_calls(self, program: ProgramGraph, context: CompileContext) -> int:
        pairs = len(fusable_pairs(program))
        if pairs == 0:
            return 0
        return (pairs + 1) * len(context.dev) * calls_per_run(program)

    def apply(self, program: ProgramGraph, context: CompileContext) -> ProgramGraph:
        # Only the pairs fusable at the start are tried (through the fusions kept so far), so
        # the number of dev runs stays within `projected_calls`.
        pairs = fusable_pairs(program)
        current = program.copy()
        if not pairs:
            context.say("fuse-steps: no fusable pairs")
            return current
        baseline = context.score(program).score
        now_in = {step.id: step.id for step in program.steps()}
        kept = 0
        for first, second in pairs:
            a, b = now_in[first], now_in[second]
            if not fusable(current, a, b):
                continue
            candidate, fused = fuse(current, a, b)
            score = context.score(candidate).score
            holds = score + _EPSILON >= baseline - self.tolerance
            context.candidate(f"{a} fused with {b}", score, len(context.dev), kept=holds)
            if holds:
                current, kept = candidate, kept + 1
                now_in = {k: fused if v in (a, b) else v for k, v in now_in.items()}
                context.say(f"fused {a} and {b}: saves 1 LM call per run")
            else:
                context.say(
                    f"kept {a} and {b} apart: fused, the dev metric is {score:.3f} "
                    f"against {baseline:.3f}"
                )
        context.say(f"fuse-steps: {kept} fusions kept, saving {kept} LM calls per run")
        return current
