"""The typed syntax tree of a `.lmp` file: what the user wrote, loops and all.

Nodes are frozen values with spans; spans and comments are presentation and never take part in
equality, so `parse(print(module)) == module` is a structural statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmc.diagnostics import Span, span_field
from lmc.signatures import FieldSpec, FunctionSpec, ModuleKind, SignatureSpec
from lmc.types import LmType


@dataclass(frozen=True, slots=True)
class Comments:
    """Comments kept for `lmc fmt`: lines before a node, and the one after it on its last line."""

    leading: tuple[str, ...] = ()
    trailing: str | None = None


NO_COMMENTS = Comments()


def comments_field() -> Comments:
    return field(default=NO_COMMENTS, compare=False, hash=False, repr=False)


# Expressions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameRef:
    name: str
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`step.field`: one output field of a bound step."""

    step: str
    field: str
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Constant:
    value: str | int | float | bool
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Concat:
    left: Expr
    right: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Retrieve:
    """`retrieve INDEX(query=expr, k=INT)`, a `list[str]` of passages."""

    index: str
    args: tuple[Arg, ...]
    span: Span = span_field()
    index_span: Span = span_field()


Expr = NameRef | FieldRef | Constant | ListExpr | Concat | Retrieve


@dataclass(frozen=True, slots=True)
class SignatureRef:
    """A step's signature: a declared name, or an inline `"a -> b"` parsed in place."""

    name: str | None
    inline: SignatureSpec | None = None
    span: Span = span_field()
    # False when an inline string failed to parse: its error is reported, its uses stay quiet.
    valid: bool = field(default=True, compare=False)


# A demo's fields in order, each a JSON-like value (str, int, float, bool, None, list, dict).
DemoFields = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Nearest:
    """`nearest K by KIND { demo { ... } ... }` in a learned block: a pool of demos, of which the
    K nearest each call's inputs are shown to it. `k` is as written (the checker wants a whole
    number of at least 1); `kind` is `bm25` unless `by` says otherwise."""

    k: int | float
    kind: str
    demos: tuple[DemoFields, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Learned:
    """`{ instruction "..." demo { field: value ... } nearest K { demo ... } }` after a step:
    what a compile learned for it (or what the author fixed by hand). Steps that share
    parameters share this."""

    instruction: str | None = None
    demos: tuple[DemoFields, ...] = ()
    span: Span = span_field()
    nearest: Nearest | None = None


@dataclass(frozen=True, slots=True)
class StepOption:
    """`name=value` after `with`: a number, or a list of names (an agent's tools)."""

    name: str
    value: int | float | tuple[str, ...]
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True, slots=True)
class StepCall:
    """`MODULE SIGNATURE(arg=expr, ...) with option=value, ... { learned }`: one LM step."""

    module: ModuleKind
    signature: SignatureRef
    args: tuple[Arg, ...]
    span: Span = span_field()
    learned: Learned | None = None
    options: tuple[StepOption, ...] = ()


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """`call FUNCTION(arg=expr, ...)`: one call of a declared Python function."""

    function: str
    args: tuple[Arg, ...]
    span: Span = span_field()
    function_span: Span = span_field()


@dataclass(frozen=True, slots=True)
class StepReuse:
    """`NAME(arg=expr, ...)`: another call of the step bound to NAME, sharing its module,
    signature and learnable parameters, on other inputs."""

    step: str
    args: tuple[Arg, ...]
    span: Span = span_field()
    step_span: Span = span_field()


# Statements --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assign:
    """`target = value`, or `target: TYPE = value`: the annotation is the type the value is
    checked (and its constants typed) against, as an argument's declared type would be."""

    target: str
    value: StepCall | FunctionCall | StepReuse | Expr
    span: Span = span_field()
    comments: Comments = comments_field()
    type: LmType | None = None


@dataclass(frozen=True, slots=True)
class ForLoop:
    var: str
    count: Expr
    body: tuple[Statement, ...]
    span: Span = span_field()
    comments: Comments = comments_field()
    end_comments: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Return:
    bindings: tuple[Binding, ...]
    span: Span = span_field()
    comments: Comments = comments_field()


Statement = Assign | ForLoop | Return


# Declarations ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureDecl:
    signature: SignatureSpec
    span: Span = span_field()
    comments: Comments = comments_field()
    field_comments: tuple[Comments, ...] = field(default=(), compare=False, hash=False, repr=False)
    end_comments: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)
    name_span: Span = span_field()
    valid: bool = field(default=True, compare=False)

    @property
    def name(self) -> str:
        assert self.signature.name is not None
        return self.signature.name


@dataclass(frozen=True, slots=True)
class FunctionDecl:
    """`function NAME = "package.module:function" { "description" input ... output ... }`."""

    function: FunctionSpec
    span: Span = span_field()
    comments: Comments = comments_field()
    field_comments: tuple[Comments, ...] = field(default=(), compare=False, hash=False, repr=False)
    end_comments: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)
    name_span: Span = span_field()
    target_span: Span = span_field()

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def signature(self) -> SignatureSpec:
        return self.function.signature


@dataclass(frozen=True, slots=True)
class IndexDecl:
    """`index NAME = KIND("corpus.jsonl", text="text")`; the path is relative to the .lmp file."""

    name: str
    kind: str
    path: str
    text_field: str = "text"
    span: Span = span_field()
    comments: Comments = comments_field()
    name_span: Span = span_field()
    kind_span: Span = span_field()
    bound: Any = field(default=None, compare=False, repr=False)  # a built program's retriever


@dataclass(frozen=True, slots=True)
class ProgramDecl:
    name: str
    params: tuple[FieldSpec, ...]
    results: tuple[FieldSpec, ...]
    body: tuple[Statement, ...]
    span: Span = span_field()
    comments: Comments = comments_field()
    end_comments: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)
    name_span: Span = span_field()


@dataclass(frozen=True, slots=True)
class MetricDecl:
    """`metric NAME(FIELD)`: a builtin metric over one output field."""

    name: str
    field: str
    span: Span = span_field()
    comments: Comments = comments_field()
    name_span: Span = span_field()
    field_span: Span = span_field()


Declaration = SignatureDecl | FunctionDecl | IndexDecl | ProgramDecl | MetricDecl


@dataclass(frozen=True, slots=True)
class Module:
    """One `.lmp` file."""

    declarations: tuple[Declaration, ...]
    file: str = field(default="<string>", compare=False, hash=False)
    end_comments: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)

    def programs(self) -> list[ProgramDecl]:
        return [d for d in self.declarations if isinstance(d, ProgramDecl)]

    def signatures(self) -> dict[str, SignatureDecl]:
        """Declared signatures by name; the first wins where a name is declared twice."""
        found: dict[str, SignatureDecl] = {}
        for d in self.declarations:
            if isinstance(d, SignatureDecl):
                found.setdefault(d.name, d)
        return found

    def functions(self) -> dict[str, FunctionDecl]:
        found: dict[str, FunctionDecl] = {}
        for d in self.declarations:
            if isinstance(d, FunctionDecl):
                found.setdefault(d.name, d)
        return found

    def indexes(self) -> dict[str, IndexDecl]:
        found: dict[str, IndexDecl] = {}
        for d in self.declarations:
            if isinstance(d, IndexDecl):
                found.setdefault(d.name, d)
        return found

    def metric(self) -> MetricDecl | None:
        return next((d for d in self.declarations if isinstance(d, MetricDecl)), None)
