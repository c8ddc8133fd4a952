"""`Program`: one checked program graph, and `load` / `loads` for `.lmp` text and artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmc.files import is_artifact_path, read_source
from lmc.ir.graph import NearestDemos, ProgramGraph, StepNode
from lmc.ir.lower import load_text, select
from lmc.runtime.prediction import Example
from lmc.signatures import FieldSpec, ModuleKind, SignatureSpec

if TYPE_CHECKING:
    from lmc.compiler.artifact import CompileInfo
    from lmc.ir.graph import MetricRef
    from lmc.passes.record import PassRecord
    from lmc.runtime.context import RunContext


@dataclass(frozen=True)
class Step:
    """One LM step of a program, read as DSPy reads a predictor: `compiled.generate_answer.demos`.

    A view of the program's graph, not a part to edit: a compile (or a module's own `demos`,
    built again) makes a new program.
    """

    name: str
    signature: SignatureSpec
    module: ModuleKind
    instruction: str | None  # the instruction it learned; None: its signature's
    demos: list[Example]
    nearest: NearestDemos | None = None  # a pool it picks demos from per input


class Program:
    """A checked program: its graph IR, the one truth every stage reads and writes.

    A compiled program also carries how it was compiled (`compiled`: model, backend, data hashes,
    metric and pass log). Two programs are equal when their graphs are: same steps, wiring,
    types and learned parameters, whatever the step names. Its LM steps read as attributes, by
    the name they are bound to (`program.generate_answer.demos`), as a DSPy module's do.
    """

    def __init__(self, ir: ProgramGraph, compiled: CompileInfo | None = None):
        self.ir = ir
        self.compiled = compiled

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def inputs(self) -> tuple[FieldSpec, ...]:
        return tuple(FieldSpec(n.name, n.type) for n in self.ir.inputs())

    @property
    def outputs(self) -> tuple[FieldSpec, ...]:
        return tuple(FieldSpec(n.name, n.type) for n in self.ir.outputs())

    @property
    def metric(self) -> MetricRef | None:
        return self.ir.metric

    @property
    def log(self) -> tuple[PassRecord, ...]:
        """What each pass of the compile bought and cost; empty for a program not compiled."""
        return self.compiled.passes if self.compiled is not None else ()

    def __getattr__(self, name: str) -> Step:
        """The LM step bound to `name`, as DSPy reads `program.generate_answer.demos`."""
        if name.startswith("_") or "ir" not in self.__dict__:
            raise AttributeError(name)
        return self.step(name)

    def step(self, name: str) -> Step:
        """The LM step bound to `name`: its signature and what it learned."""
        for node in self.ir.steps():
            if node.id == name:
                return self._step(node)
        steps = ", ".join(node.id for node in self.ir.steps()) or "none"
        raise AttributeError(f"program {self.name} has no step '{name}'; its steps: {steps}")

    def named_predictors(self) -> list[tuple[str, Step]]:
        """Every LM step by name, once per set of learned parameters (a loop's copies share
        one), as DSPy's `named_predictors()` lists a module's predictors."""
        seen: set[str] = set()
        found = []
        for node in self.ir.steps():
            if node.param_key not in seen:
                seen.add(node.param_key)
                found.append((node.id, self._step(node)))
        return found

    def _step(self, node: StepNode) -> Step:
        params = self.ir.params[node.param_key]
        inputs = [f.name for f in node.signature.inputs]
        demos = []
        for demo in params.demos:
            fields = dict(demo.fields)
            demos.append(Example(fields).with_inputs(*(n for n in inputs if n in fields)))
        return Step(node.id, node.signature, node.module, params.instruction, demos, params.nearest)

    def __call__(self, **inputs: Any) -> Any:
        """Run the program on the current run context (see `lmc.configure`)."""
        return self.run(inputs)

    def run(self, inputs: dict[str, Any], context: RunContext | None = None) -> Any:
        """The outputs, as an `lmc.Prediction`, for one set of inputs."""
        from lmc.runtime.eager import run_program
        from lmc.runtime.prediction import Prediction

        return Prediction(**run_program(self.ir, self.inputs, inputs, context))

    def inspect_history(self, n: int = 1) -> None:
        """Print the last `n` LM calls (of the current context), as DSPy's modules do."""
        from lmc.runtime.context import inspect_history

        inspect_history(n)

    async def acall(self, **inputs: Any) -> Any:
        """`await program.acall(question=...)`: the run on a worker thread, so an event loop
        (a web server, say) goes on serving meanwhile."""
        import asyncio

        return await asyncio.to_thread(self.run, inputs)

    def batch(
        self,
        examples: Iterable[Mapping[str, Any]],
        num_threads: int | None = None,
        context: RunContext | None = None,
    ) -> list[Any]:
        """One Prediction per example (dicts or `lmc.Example`s), in order, `num_threads` at a
        time; None for an example whose run failed (its error is in the trace)."""
        from lmc.runtime.eager import run_batch
        from lmc.runtime.prediction import Prediction

        outputs = run_batch(self.ir, self.inputs, list(examples), num_threads, context)
        return [Prediction(**o) if o is not None else None for o in outputs]

    def to_lmp(self, folder: str | os.PathLike[str] | None = None) -> str:
        """The program as `.lmp` text, with the signatures and indexes it uses and what a
        compile learned; corpus paths relative to `folder` (default: the working folder)."""
        from lmc.ir.text import print_program

        return print_program(self.ir, os.fspath(folder) if folder is not None else None)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the program: as `.lmp` text, or as an artifact (`.json`) that also keeps how it
        was compiled. Either reads back with `lmc.load` as an equal program."""
        from lmc.compiler.artifact import CompileInfo, write_artifact
        from lmc.files import write_atomically

        target = Path(path)
        if is_artifact_path(target):
            write_artifact(target, self.ir, self.compiled or CompileInfo())
        else:
            text = self.to_lmp(os.path.dirname(os.path.abspath(target)))
            write_atomically(target, text.encode("utf-8"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return self.ir == other.ir

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inputs = ", ".join(f"{f.name}: {f.type}" for f in self.inputs)
        outputs = ", ".join(f"{f.name}: {f.type}" for f in self.outputs)
        return f"<Program {self.name}({inputs}) -> ({outputs}), {len(self.ir.steps())} steps>"


def loads(text: str, program: str | None = None, *, file: str = "<string>") -> Program:
    """Parse and check `.lmp` text; return the program named `program`, or the only one."""
    return Program(select(load_text(text, file), program))


def load(path: str | os.PathLike[str], program: str | None = None) -> Program:
    """Read a `.lmp` file (the program named `program`, or its only one) or an artifact `.json`
    (its compiled program, with how it was compiled)."""
    from lmc.compiler.artifact import ArtifactError, read_artifact

    file = os.fspath(path)
    if not is_artifact_path(file):
        return loads(read_source(file), program, file=file)
    graph, info = read_artifact(file)
    if program is not None and program != graph.name:
        raise ArtifactError(f"{file}: the artifact holds program '{graph.name}', not '{program}'")
    return Program(graph, info)
