"""Symbolic tracing of a module's `forward` into `.lmp` syntax.

While `lmc.build` runs `forward`, every step call appends a statement and returns symbolic values
that stand for what the step will produce at run time. The statements form an ordinary syntax
tree, so a Python program goes through the same checks and lowering as a `.lmp` file, and prints
as one.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn

from lmc.diagnostics import Diagnostic, ProgramError, Span, did_you_mean
from lmc.plugins import PYTHON_RETRIEVER
from lmc.signatures import FunctionSpec, ModuleKind, SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.lark_parser import KEYWORDS
from lmc.types import BOOL, FLOAT, INT, PASSAGES, STR, ListOf, LmType, Nothing, join

if TYPE_CHECKING:
    from lmc.builder.modules import IndexSpec, Module, Predict, Retrieve

_ACTIVE: ContextVar[Trace | None] = ContextVar("lmc_active_trace", default=None)


def active_trace() -> Trace | None:
    """The trace `lmc.build` is recording in this thread or task, if any."""
    return _ACTIVE.get()


@dataclass(frozen=True)
class _StepField:
    statement: ast.Assign
    field: str


class Symbol:
    """A value of the program being traced: what it will be at run time."""

    __slots__ = ("_label", "_ref", "_trace", "_type")

    def __init__(self, trace: Trace, ref: ast.Expr | _StepField, type_: LmType, label: str):
        self._trace, self._ref, self._type, self._label = trace, ref, type_, label

    def __add__(self, other: Any) -> Symbol:
        return self._trace.concat(self, other)

    def __radd__(self, other: Any) -> Symbol:
        return self._trace.concat(other, self)

    def _refuse(self, what: str) -> NoReturn:
        raise TypeError(
            f"{what} a traced value ({self._label}) is not part of an lmc program: while "
            "lmc.build traces forward(), values are symbolic, known only when the program runs. "
            "Pass them to a step, or do this in a Python function the program calls: decorate "
            "it with @lmc.function and call it on the value"
        )

    def __bool__(self) -> bool:
        self._refuse("testing")

    def __iter__(self) -> Iterator[Any]:
        self._refuse("iterating over")

    def __len__(self) -> int:
        self._refuse("taking the length of")

    def __getitem__(self, key: Any) -> Any:
        self._refuse("indexing")

    def __str__(self) -> str:
        self._refuse("formatting")

    def __format__(self, spec: str) -> str:
        self._refuse("formatting")

    def __repr__(self) -> str:
        return f"<traced {self._label}: {self._type}>"

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse(f"calling .{name}() on")

    def __contains__(self, item: Any) -> bool:
        self._refuse("testing membership in")

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("calling")

    def __int__(self) -> int:
        self._refuse("converting")

    def __float__(self) -> float:
        self._refuse("converting")

    # `if pred.answer == "yes":` would otherwise compare two objects, be False while tracing, and
    # drop the branch from the program without a word.
    def __eq__(self, other: object) -> bool:
        self._refuse("comparing")

    def __ne__(self, other: object) -> bool:
        self._refuse("comparing")

    __hash__ = object.__hash__
    __lt__ = __le__ = __gt__ = __ge__ = __eq__


def _arithmetic(self: Symbol, *args: Any) -> NoReturn:
    self._refuse("arithmetic on")


for _operator in (
    "sub mul truediv floordiv mod pow matmul and or xor lshift rshift "
    "rsub rmul rtruediv rfloordiv rmod rpow rmatmul rand ror rxor rlshift rrshift "
    "neg pos abs invert"
).split():
    setattr(Symbol, f"__{_operator}__", _arithmetic)


class StepResult:
    """A traced step call; its output fields are read as attributes, `pred.answer`."""

    def __init__(self, trace: Trace, statement: ast.Assign, spec: SignatureSpec, kind: ModuleKind):
        self._trace, self._statement, self._spec, self._kind = trace, statement, spec, kind

    def __getattr__(self, name: str) -> Symbol:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = {f.name: f.type for f in self._spec.outputs_for(self._kind)}
        if name not in fields:
            raise AttributeError(
                f"{self._spec.display_name} has no output '{name}'; it has "
                f"{', '.join(fields)}{did_you_mean(name, fields)}"
            )
        return Symbol(self._trace, _StepField(self._statement, name), fields[name], name)

    def declared_outputs(self) -> list[str]:
        return [f.name for f in self._spec.outputs]


class Passages:
    """A traced `Retrieve` call: `.passages` is the `list[str]` of passage texts."""

    def __init__(self, passages: Symbol):
        self.passages = passages


class Trace:
    """The statements, signatures and indexes one `forward` run produced."""

    def __init__(self, root: Module):
        self.statements: list[ast.Statement] = []
        self.signatures: dict[str, SignatureSpec] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.indexes: dict[str, IndexSpec] = {}
        # A module reachable by two attribute paths is named by its first, as
        # `named_predictors` (and so `Module.load`) names it.
        self.paths: dict[int, str] = {}
        for path, module in root.named_modules():
            self.paths.setdefault(id(module), path)
        self.targets: dict[int, str] = {}
        self.taken: set[str] = set()
        self.latest: dict[str, ast.Assign] = {}
        self.aliases: dict[tuple[int, str], str] = {}

    @contextmanager
    def active(self) -> Iterator[Trace]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def input(self, name: str, type_: LmType) -> Symbol:
        self.taken.add(name)
        return Symbol(self, ast.NameRef(name), type_, name)

    # names ---------------------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        base = spellable_name(base)
        name, n = base, 2
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name

    def target_of(self, module: Predict) -> str:
        """One binding name per module object: calls of one module share its parameters."""
        if id(module) not in self.targets:
            default = snake_case(module.signature.name or type(module).__name__)
            self.targets[id(module)] = self.fresh(self.paths.get(id(module), default))
        return self.targets[id(module)]

    # recording -----------------------------------------------------------------------------------

    def step(self, module: Predict, inputs: dict[str, Any], span: Span) -> StepResult:
        spec = module.signature
        if spec.name is not None:
            known = self.signatures.setdefault(spec.name, spec)
            if known != spec:
                raise ProgramError(
                    [
                        Diagnostic(
                            span, f"two different signatures are named {spec.name}; rename one"
                        )
                    ]
                )
            ref = ast.SignatureRef(spec.name, None, span)
        else:
            ref = ast.SignatureRef(None, spec, span)
        args = tuple(
            ast.Arg(name, self.expr(value, span)[0], span) for name, value in inputs.items()
        )
        target = self.target_of(module)
        for tool in module.options.tools:
            self.declare(tool, span)
        options = tuple(ast.StepOption(n, v, span, span) for n, v in module.options.written())
        params = module.params()
        pool = params.nearest
        nearest = (
            ast.Nearest(pool.k, pool.kind, tuple(d.fields for d in pool.pool), span)
            if pool is not None
            else None
        )
        learned = (
            ast.Learned(params.instruction, tuple(d.fields for d in params.demos), span, nearest)
            if params.instruction is not None or params.demos or nearest is not None
            else None
        )
        call = ast.StepCall(module.kind, ref, args, span, learned, options)
        statement = ast.Assign(target, call, span)
        self.statements.append(statement)
        self.latest[target] = statement
        return StepResult(self, statement, spec, module.kind)

    def function(self, spec: FunctionSpec, inputs: dict[str, Any], span: Span) -> Any:
        """A call of a Python function: its one result as a value, or its results as
        attributes of what is returned."""
        self.declare(spec, span)
        args = tuple(ast.Arg(n, self.expr(v, span)[0], span) for n, v in inputs.items())
        target = self.fresh(spec.name)
        call = ast.FunctionCall(spec.name, args, span, span)
        statement = ast.Assign(target, call, span)
        self.statements.append(statement)
        self.latest[target] = statement
        outputs = spec.signature.outputs
        if len(outputs) == 1:
            return Symbol(self, _StepField(statement, outputs[0].name), outputs[0].type, target)
        return StepResult(self, statement, spec.signature, "predict")

    def declare(self, spec: FunctionSpec, span: Span) -> None:
        known = self.functions.setdefault(spec.name, spec)
        if known != spec:
            raise ProgramError(
                [Diagnostic(span, f"two different functions are named {spec.name}; rename one")]
            )

    def retrieve(self, module: Retrieve, query: Any, k: int, span: Span) -> Passages:
        if module.index is None:
            raise ProgramError(
                [
                    Diagnostic(
                        span,
                        "Retrieve needs an index: "
                        "lmc.Retrieve(k=3, index=lmc.bm25('corpus.jsonl'))",
                    )
                ]
            )
        wanted = module.index
        index = self.indexes.setdefault(wanted.name, wanted)
        copy = 1
        while index.bound is not wanted.bound and wanted.kind == PYTHON_RETRIEVER:
            # Retriever objects are named by their class: the second one is `NAME_2`.
            copy += 1
            wanted = replace(module.index, name=f"{module.index.name}_{copy}")
            index = self.indexes.setdefault(wanted.name, wanted)
        if index != wanted:
            raise ProgramError(
                [
                    Diagnostic(
                        span,
                        f"two different indexes are named {index.name}; pass name= to lmc.bm25",
                    )
                ]
            )
        args = (
            ast.Arg("query", self.expr(query, span)[0], span),
            ast.Arg("k", ast.Constant(k, span), span),
        )
        return Passages(
            self.bind("passages", ast.Retrieve(index.name, args, span, span), PASSAGES, span)
        )

    def concat(self, left: Any, right: Any) -> Symbol:
        from lmc.builder.location import python_span

        span = python_span()
        left_expr, left_type = self.expr(left, span)
        right_expr, right_type = self.expr(right, span)
        joined = join(left_type, right_type)
        type_ = joined if isinstance(joined, ListOf) else ListOf(Nothing())
        return self.bind("joined", ast.Concat(left_expr, right_expr, span), type_, span)

    def bind(self, base: str, value: ast.Expr, type_: LmType, span: Span) -> Symbol:
        """Name a computed value once, so every use reads one node."""
        name = self.fresh(base)
        self.statements.append(ast.Assign(name, value, span))
        return Symbol(self, ast.NameRef(name), type_, name)

    # expressions ---------------------------------------------------------------------------------

    def expr(self, value: Any, span: Span) -> tuple[ast.Expr, LmType]:
        if isinstance(value, Symbol):
            if value._trace is not self:
                raise ProgramError([Diagnostic(span, "a value from another traced program")])
            ref = value._ref
            if isinstance(ref, _StepField):
                return self.field_ref(ref, span), value._type
            # Errors about this use should point at the call that uses it.
            return replace(ref, span=span), value._type
        if isinstance(value, StepResult):
            fields = ", ".join(f"pred.{f}" for f in value.declared_outputs())
            raise ProgramError(
                [
                    Diagnostic(
                        span, f"pass one field of a step's result, not the whole result: {fields}"
                    )
                ]
            )
        if isinstance(value, list | tuple):
            items = [self.expr(item, span) for item in value]
            item_type: LmType | None = Nothing()
            for _, t in items:
                item_type = join(item_type, t) if item_type is not None else None
            list_type = ListOf(item_type) if item_type is not None else ListOf(STR)
            return ast.ListExpr(tuple(e for e, _ in items), span), list_type
        if isinstance(value, bool):
            return ast.Constant(value, span), BOOL
        if isinstance(value, int):
            return ast.Constant(value, span), INT
        if isinstance(value, float) and math.isfinite(value):
            return ast.Constant(value, span), FLOAT
        if isinstance(value, str):
            return ast.Constant(value, span), STR
        raise ProgramError(
            [
                Diagnostic(
                    span,
                    f"cannot pass {value!r} into a traced program; expected a traced value, "
                    "a constant (str, int, a finite float, bool) or a list of them",
                )
            ]
        )

    def field_ref(self, ref: _StepField, span: Span) -> ast.Expr:
        """`step.field`, or an alias bound right after the call when the name was rebound since."""
        target = ref.statement.target
        if self.latest[target] is ref.statement:
            return ast.FieldRef(target, ref.field, span)
        key = (id(ref.statement), ref.field)
        if key not in self.aliases:
            alias = self.fresh(f"{target}_{ref.field}")
            self.aliases[key] = alias
            position = next(i for i, s in enumerate(self.statements) if s is ref.statement)
            self.statements.insert(
                position + 1, ast.Assign(alias, ast.FieldRef(target, ref.field, span), span)
            )
        return ast.NameRef(self.aliases[key], span)


def spellable_name(text: str, fallback: str = "step") -> str:
    """A name `.lmp` can spell, made from `text` (an attribute path, a file's stem): ASCII
    letters, digits and `_`, not a keyword of `.lmp` or Python."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or fallback
    if name[0].isdigit():
        name = f"{fallback}_{name}"
    if name in KEYWORDS or keyword.iskeyword(name):
        name += "_"
    return name


def step_name(path: str) -> str:
    """The name a module's step is bound to in the program `lmc.build` traces, from the
    module's attribute path: `generate_answer`, `hop.query` -> `hop_query`."""
    return spellable_name(path)


def snake_case(name: str) -> str:
    """`DummyRetriever` -> `dummy_retriever`: a class name as a binding or index name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
