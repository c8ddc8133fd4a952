"""DSPy-shaped modules: `Module` with `forward`, and the steps `Predict`, `ChainOfThought` and
`Retrieve`. `lmc.build(module)` traces `forward` into the same IR a `.lmp` file gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from lmc.builder.location import python_span
from lmc.builder.signature import Signature, signature_spec
from lmc.builder.trace import active_trace, snake_case, spellable_name, step_name
from lmc.errors import InputError
from lmc.ir.graph import Demo, NearestDemos, StepNode, StepParams
from lmc.runtime.prediction import Prediction
from lmc.signatures import DEFAULT_MAX_ITERS, FINISH, ModuleKind, SignatureSpec, StepOptions


class Module:
    """Subclass, assign steps (or other modules) as attributes, and write `forward`.

    The parameter names of `forward` are the program's inputs; what it returns (an
    `lmc.Prediction`, a dict, or one step's result) names the program's outputs.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} needs a forward() method")

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every module reachable from this one's attributes, with its attribute path."""
        for name, value in vars(self).items():
            yield from _walk(value, f"{prefix}{name}")

    def named_predictors(self) -> list[tuple[str, Predict]]:
        """Every LM step (a `Predict` or `ChainOfThought`) once, with its attribute path."""
        seen: set[int] = set()
        found = []
        for path, module in self.named_modules():
            if isinstance(module, Predict) and id(module) not in seen:
                seen.add(id(module))
                found.append((path, module))
        return found

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the program this module builds (`lmc.build(self)`), with the demos and
        instructions its steps carry: an artifact (`.json`) or `.lmp` text."""
        from lmc.builder.build import build

        build(self).save(path)

    def load(self, path: str | os.PathLike[str]) -> Self:
        """DSPy's `RAG().load("compiled.json")`: each step of this module takes the instruction
        and demos that a saved program (an artifact, or `.lmp` text) has for the step of its
        name, so calling the module answers as the saved program does. Returns the module."""
        from lmc.compiler.program import load

        program = load(path)
        steps = {node.id: node for node in program.ir.steps()}
        for attribute, predictor in self.named_predictors():
            name = step_name(attribute)
            node = steps.get(name)
            where = f"{os.fspath(path)}: {type(self).__name__}.{attribute}"
            if node is None:
                raise InputError(
                    f"{where}: program {program.name} has no step '{name}'; its steps: "
                    + (", ".join(steps) or "none")
                )
            if (node.signature, node.module) != (predictor.signature, predictor.kind):
                raise InputError(
                    f"{where} is {predictor.kind} {predictor.signature.display_name}, but the "
                    f"saved step '{name}' is {node.module} {node.signature.display_name}"
                )
            learned = program.step(name)
            predictor.instruction = learned.instruction
            predictor.demos = learned.demos
            predictor.nearest = learned.nearest
        return self


def _walk(value: Any, path: str) -> Iterator[tuple[str, Module]]:
    if isinstance(value, Module):
        yield path, value
        yield from value.named_modules(prefix=f"{path}.")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key}]")


# What `Predict(signature, **config)` takes, as DSPy's: the decoding options lmc carries in the
# program (and its cache key). Anything else is refused rather than silently dropped.
DECODING = ("temperature", "max_tokens", "n")


class Predict(Module):
    """One LM step that fills a signature's output fields from its input fields.

    `temperature`, `max_tokens` and `n` are the step's decoding options, as in DSPy; with `n`
    above 1 the step's answer is the most common of `n` samples (DSPy returns all `n` as
    `completions`; lmc's steps have one value per field, so it votes).

    `demos` (Examples or dicts of the step's fields) and `instruction` (None: the signature's)
    are what a compile learns for it, as a DSPy predictor's `demos` are: `module.load(path)`
    sets them, and both calling the step and `lmc.build` use them. So is `nearest`, a pool the
    step picks demos from per input (`dynamic-demos`).
    """

    kind: ModuleKind = "predict"

    def __init__(self, signature: type[Signature] | str | SignatureSpec, **config: Any) -> None:
        unknown = sorted(set(config) - set(DECODING))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got {', '.join(unknown)}; it takes a signature and the "
                f"decoding options {', '.join(DECODING)}"
            )
        self.signature = signature_spec(signature)
        self.options = StepOptions(**config)
        self.demos: list[Any] = []
        self.instruction: str | None = None
        self.nearest: NearestDemos | None = None

    def __call__(self, **inputs: Any) -> Any:
        trace = active_trace()
        if trace is not None:
            return trace.step(self, inputs, python_span())
        from lmc.runtime.eager import run_step

        return Prediction(
            **run_step(
                self.signature, self.kind, inputs, options=self.options, params=self.params()
            )
        )

    def params(self) -> StepParams:
        """The step's instruction and demos, each demo keeping only the step's own fields (a
        train example may hold more, as in DSPy)."""
        fields = StepNode("step", self.signature, self.kind, "step", self.options).demo_fields()
        demos = []
        for demo in self.demos:
            values = demo.toDict() if hasattr(demo, "toDict") else demo
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"{self!r}: a demo is an lmc.Example or a dict of fields; "
                    f"found {type(demo).__name__}"
                )
            demos.append(Demo(tuple((k, v) for k, v in values.items() if k in fields)))
        return StepParams(self.instruction, tuple(demos), self.nearest)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.display_name})"


class ChainOfThought(Predict):
    """A step that writes its `reasoning` before the declared outputs."""

    kind: ModuleKind = "chain_of_thought"


class ReAct(Predict):
    """An agent: each iteration the LM thinks and calls one of `tools` (typed Python functions:
    `@lmc.tool`, or plain functions typed by their annotations), reads what it returned, and
    goes on until it calls `finish` or has made `max_iters` calls; then it writes the
    signature's outputs. The same `react` step as in `.lmp`; its demos are whole worked runs."""

    kind: ModuleKind = "react"

    def __init__(
        self,
        signature: type[Signature] | str | SignatureSpec,
        tools: list[Any],
        max_iters: int = DEFAULT_MAX_ITERS,
    ) -> None:
        from lmc.builder.functions import Function

        super().__init__(signature)
        if not tools:
            raise ValueError("ReAct needs at least one tool: ReAct(signature, tools=[search])")
        self.tools = [t if isinstance(t, Function) else Function(t) for t in tools]
        names = [t.spec.name for t in self.tools]
        if FINISH in names or len(set(names)) != len(names):
            raise ValueError(
                f"ReAct's tools need distinct names other than '{FINISH}'; found {', '.join(names)}"
            )
        if type(max_iters) is not int or max_iters < 1:
            raise ValueError(f"max_iters must be a whole number from 1; found {max_iters!r}")
        self.options = StepOptions(tools=tuple(t.spec for t in self.tools), max_iters=max_iters)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A retrieval corpus for `Retrieve`; see `lmc.bm25`. A Python retriever's is `bound` to
    the object that answers for it in this process (see `lmc.ir.graph.IndexRef`)."""

    name: str
    kind: str
    path: str
    text_field: str = "text"
    bound: Any = field(default=None, compare=False, repr=False)


def bm25(path: str, *, text: str = "text", name: str | None = None) -> IndexSpec:
    """A BM25 index over a JSONL corpus (one passage per record, in field `text`)."""
    if name is None:
        name = spellable_name(Path(path).stem, "index")
    return IndexSpec(name, "bm25", path, text)


class Retrieve(Module):
    """Top-`k` passages for a query; `.passages` is a `list[str]`, as in DSPy."""

    def __init__(self, k: int = 3, *, index: IndexSpec | None = None) -> None:
        self.k = k
        self.index = index

    def __call__(self, query: Any = None, k: int | None = None, **kwargs: Any) -> Any:
        if "query_or_queries" in kwargs:
            query = kwargs.pop("query_or_queries")
        if kwargs:
            raise TypeError(f"Retrieve takes query and k; found {', '.join(kwargs)}")
        if type(self).forward is not Retrieve.forward:
            return self._python_retrieval(self, query, k or self.k)
        if self.index is None:
            from lmc.runtime.context import configured_rm

            rm = configured_rm()
            if rm is not None:  # DSPy's `configure(rm=...)` and a plain `Retrieve(k=3)`
                return self._python_retrieval(rm, query, k or self.k)
        trace = active_trace()
        if trace is not None:
            return trace.retrieve(self, query, k or self.k, python_span())
        if self.index is None:
            raise ValueError("Retrieve needs an index: lmc.Retrieve(k=3, index=lmc.bm25(...))")
        from lmc.retrieval.index import open_retriever

        retriever = open_retriever(Path(self.index.path), self.index.kind, self.index.text_field)
        return Prediction(passages=retriever.search(str(query), k or self.k))

    def _python_retrieval(self, retriever: Any, query: Any, k: int) -> Any:
        """Retrieval by Python code: a subclass with its own `forward(query)`, as DSPy programs
        write retrievers over their own documents, or the configured `rm`. While tracing, a
        `retrieve` step of the program whose index is that object."""
        from lmc.retrieval.python import PythonRetriever

        trace = active_trace()
        if trace is None:
            return Prediction(passages=PythonRetriever(retriever).search(str(query), k))
        from lmc.plugins import PYTHON_RETRIEVER
        from lmc.runtime.functions import remember

        cls = type(retriever)
        target = f"{cls.__module__}:{cls.__qualname__}"
        # The program keeps this object; an artifact saved from it and loaded in this process
        # finds it by name (the last one of its class).
        remember(target, retriever)
        spec = IndexSpec(snake_case(cls.__name__), PYTHON_RETRIEVER, target, bound=retriever)
        return trace.retrieve(_WithIndex(self.k, index=spec), query, k, python_span())


class _WithIndex(Retrieve):
    """What the trace records for a Python retriever: a retrieve step on its index."""
