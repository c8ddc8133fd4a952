"""What one LM step does: typed input and output fields plus a task instruction.

A `SignatureSpec` is the value both front ends produce (the `.lmp` parser and the Python
builder) and the IR carries on every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lmc.diagnostics import Diagnostics, Span, span_field
from lmc.types import STR, LmType

ModuleKind = Literal["predict", "chain_of_thought", "react"]
MODULE_KINDS: tuple[ModuleKind, ...] = ("predict", "chain_of_thought", "react")
REASONING = "reasoning"
# What an agent's demos record besides its inputs and outputs: the steps it took.
TRAJECTORY = "trajectory"
# The tool an agent calls to say it is done; no declared tool may take the name.
FINISH = "finish"
# As DSPy's ReAct: enough for a capable model; small models want fewer (`max_iters=4`).
DEFAULT_MAX_ITERS = 20


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: LmType = STR
    desc: str | None = None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    """A named signature, or an inline one (`name is None`) written as `"a, b -> c"`."""

    name: str | None
    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    instruction: str | None = None
    span: Span = span_field()

    def input(self, name: str) -> FieldSpec | None:
        return next((f for f in self.inputs if f.name == name), None)

    def output(self, name: str) -> FieldSpec | None:
        return next((f for f in self.outputs if f.name == name), None)

    def outputs_for(self, module: ModuleKind) -> tuple[FieldSpec, ...]:
        """The fields a step produces: chain_of_thought adds `reasoning: str` before the rest."""
        if module == "chain_of_thought":
            return (FieldSpec(REASONING, STR, "Think step by step.", self.span), *self.outputs)
        return self.outputs

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else f'"{self.short_text()}"'

    def short_text(self) -> str:
        """The DSPy-style string form, `a, b: int -> c` (a field without a type is `str`)."""

        def one(f: FieldSpec) -> str:
            return f.name if f.type == STR else f"{f.name}: {f.type}"

        return (
            ", ".join(one(f) for f in self.inputs)
            + " -> "
            + ", ".join(one(f) for f in self.outputs)
        )


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A Python function a program calls as a step: where it is (`package.module:function`),
    and its signature: the description (as the instruction), typed parameters (inputs) and
    results (outputs)."""

    target: str
    signature: SignatureSpec

    @property
    def name(self) -> str:
        assert self.signature.name is not None
        return self.signature.name


def check_signature(
    signature: SignatureSpec,
    diagnostics: Diagnostics,
    at: Span | None = None,
    kind: str = "signature",
) -> bool:
    """Report what makes a signature (or a function's) unusable; True if nothing does."""
    where, span = f"{kind} {signature.display_name}", at or signature.span
    ok = bool(signature.inputs and signature.outputs)
    if not signature.inputs:
        diagnostics.error(span, f"{where} needs at least one input field")
    if not signature.outputs:
        diagnostics.error(span, f"{where} needs at least one output field")
    seen: set[str] = set()
    for f in signature.inputs + signature.outputs:
        if f.name in seen:
            diagnostics.error(f.span, f"field '{f.name}' is declared twice in {where}")
            ok = False
        seen.add(f.name)
    return ok


@dataclass(frozen=True, slots=True)
class StepOptions:
    """How a step runs beyond what its signature says: decoding, and an agent's tools.

    `temperature` and `max_tokens` go to the model as they are (None: the backend's default).
    With `n` above 1 the step is sampled `n` times and each output field takes its most common
    value (ties go to the earliest sample): majority voting, as DSPy's `majority`. A `react`
    step calls its `tools` (declared functions) for at most `max_iters` iterations.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    n: int = 1
    tools: tuple[FunctionSpec, ...] = ()
    max_iters: int = DEFAULT_MAX_ITERS

    def tool(self, name: str) -> FunctionSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def written(self) -> list[tuple[str, int | float | tuple[str, ...]]]:
        """The options as `with name=value, ...` writes them: those that differ from the
        defaults, in the order the language reference lists them, tools by name."""
        default = StepOptions()
        written: list[tuple[str, int | float | tuple[str, ...]]] = []
        for name in ("temperature", "max_tokens", "n", "tools", "max_iters"):
            value = getattr(self, name)
            if value != getattr(default, name):
                written.append((name, tuple(t.name for t in value) if name == "tools" else value))
        return written


NO_OPTIONS = StepOptions()
