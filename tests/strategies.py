"""Hypothesis strategies for valid `.lmp` syntax trees.

`modules()` builds files that `lmc.lower.check` accepts: every name is bound before it is read,
every argument and result has a type its target accepts, loops only rebind a name to a value of
the type it already has (so each unrolled iteration sees the same types), every step bound to one
name uses the same module and signature (they share learnable parameters), and a metric names a
result that every program returns.

Generation is guided by the target type of each position; `infer_type` then restates the
checker's typing rules and any expression it does not accept is replaced by a constant that
always fits, so the modules stay valid by construction rather than by filtering.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from lmc.signatures import MODULE_KINDS, REASONING, FieldSpec, ModuleKind, SignatureSpec
from lmc.syntax import tree as ast
from lmc.syntax.printer import print_module
from lmc.types import (
    BOOL,
    FLOAT,
    INT,
    PASSAGES,
    STR,
    ListOf,
    LmType,
    Nothing,
    OneOf,
    OptionalOf,
    accepts,
    join,
)

KEYWORDS = frozenset(
    "signature program input output return import for in range predict chain_of_thought "
    "retrieve index metric true false function call react with".split()
)
BUILTIN_METRICS = ("exact_match", "contains", "f1", "numeric")
EXPRESSION_DEPTH = 2
MAX_LOOP_NESTING = 2

# Names that look like keywords, type names or generated node ids, to probe the lexer.
_TRICKY_NAMES = (
    "inputs",
    "index_",
    "returned",
    "format",
    "truth",
    "falsey",
    "ranges",
    "str",
    "list",
    "literal",
    "int",
    "bm25",
    "const",
    "_",
    "Q1",
)

identifiers: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_TRICKY_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True),
).filter(lambda name: name not in KEYWORDS)

field_names: st.SearchStrategy[str] = identifiers.filter(lambda name: name != REASONING)

_LINE_CHARACTERS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))

any_text: st.SearchStrategy[str] = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\n"),
    max_size=12,
)
"""Any text a user may write in a string: no control characters except newlines."""

docstring_text: st.SearchStrategy[str] = (
    st.lists(st.text(_LINE_CHARACTERS, max_size=10), min_size=1, max_size=3)
    .map("\n".join)
    .map(inspect.cleandoc)
    .filter(
        lambda text: (
            text != ""
            and inspect.cleandoc(text) == text
            and '"""' not in text
            and not text.endswith('"')
        )
    )
)
"""Text that reads back unchanged from a dedented `\"\"\"...\"\"\"` block and can be
written as one: no three quotes in a row, no quote just before the closing ones."""

instructions: st.SearchStrategy[str] = st.one_of(docstring_text, any_text)

# Signed: a program's constants may be negative (`offset=-1`), as the builder writes them.
whole_numbers: st.SearchStrategy[int] = st.one_of(
    st.integers(min_value=-1000, max_value=1000), st.integers()
)
decimals: st.SearchStrategy[float] = st.floats(allow_nan=False, allow_infinity=False)


def _optional(inner: LmType) -> LmType:
    return inner if isinstance(inner, OptionalOf) else OptionalOf(inner)


literal_types: st.SearchStrategy[OneOf] = st.lists(
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\n"),
        max_size=6,
    ),
    min_size=1,
    max_size=3,
    unique=True,
).map(lambda choices: OneOf(tuple(choices)))

lm_types: st.SearchStrategy[LmType] = st.one_of(
    st.sampled_from([STR, PASSAGES]),
    st.recursive(
        st.one_of(st.sampled_from([STR, INT, FLOAT, BOOL]), literal_types),
        lambda inner: st.one_of(inner.map(ListOf), inner.map(_optional)),
        max_leaves=3,
    ),
)
"""Every type a field may declare, `str` and `list[str]` most often so that steps can feed each
other; `T??` is not a type, so optionals never nest."""


# Typing --------------------------------------------------------------------------------------


def _required(t: LmType | None) -> LmType | None:
    return t.inner if isinstance(t, OptionalOf) else t


@dataclass
class Scope:
    """What a program may read at one point: values, bound steps, and the file's declarations."""

    values: dict[str, LmType]
    steps: dict[str, tuple[SignatureSpec, ModuleKind]] = field(default_factory=dict)
    signatures: tuple[SignatureSpec, ...] = ()
    indexes: tuple[str, ...] = ()
    step_identities: dict[str, tuple[SignatureSpec, ModuleKind]] = field(default_factory=dict)
    """The signature and module a name was first bound to as a step: steps bound to one name
    share learnable parameters, so every step bound to it must use the same ones."""

    def names(self) -> set[str]:
        return set(self.values) | set(self.steps)

    def bind_value(self, name: str, value_type: LmType) -> None:
        self.steps.pop(name, None)
        self.values[name] = value_type

    step_options: dict[str, tuple[ast.StepOption, ...]] = field(default_factory=dict)
    """The `with ...` options of the step a name was first bound to, shared as its module is."""

    def bind_step(self, name: str, signature: SignatureSpec, module: ModuleKind) -> None:
        self.values.pop(name, None)
        self.steps[name] = (signature, module)
        self.step_identities.setdefault(name, (signature, module))

    def step_field_type(self, step: str, field_name: str) -> LmType | None:
        if step not in self.steps:
            return None
        signature, module = self.steps[step]
        return next((f.type for f in signature.outputs_for(module) if f.name == field_name), None)

    def references(self) -> list[tuple[ast.Expr, LmType]]:
        found: list[tuple[ast.Expr, LmType]] = [
            (ast.NameRef(name), value_type) for name, value_type in self.values.items()
        ]
        for step, (signature, module) in self.steps.items():
            found += [(ast.FieldRef(step, f.name), f.type) for f in signature.outputs_for(module)]
        return found


def infer_type(expr: ast.Expr, expected: LmType | None, scope: Scope) -> LmType | None:
    """The type the checker gives `expr` where `expected` flows in, or None if it rejects it."""
    if isinstance(expr, ast.NameRef):
        return scope.values.get(expr.name)
    if isinstance(expr, ast.FieldRef):
        return scope.step_field_type(expr.step, expr.field)
    if isinstance(expr, ast.Constant):
        return _constant_type(expr.value, expected)
    if isinstance(expr, ast.ListExpr):
        return _list_type(expr, expected, scope)
    if isinstance(expr, ast.Concat):
        return _concat_type(expr, expected, scope)
    return PASSAGES if _retrieve_is_valid(expr, scope) else None


def _constant_type(value: str | int | float | bool, expected: LmType | None) -> LmType:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    wanted = _required(expected)
    return wanted if isinstance(wanted, OneOf) and value in wanted.choices else STR


def _list_type(expr: ast.ListExpr, expected: LmType | None, scope: Scope) -> LmType | None:
    wanted = _required(expected)
    item_expected = wanted.item if isinstance(wanted, ListOf) else None
    item_type: LmType | None = Nothing()
    for item in expr.items:
        found = infer_type(item, item_expected, scope)
        if found is None or item_type is None:
            return None
        item_type = join(item_type, found)
    if item_type is None:
        return None
    if isinstance(item_type, Nothing) and isinstance(wanted, ListOf):
        item_type = wanted.item
    return ListOf(item_type)


def _concat_type(expr: ast.Concat, expected: LmType | None, scope: Scope) -> LmType | None:
    left = infer_type(expr.left, expected, scope)
    right = infer_type(expr.right, left if left is not None else expected, scope)
    if not isinstance(left, ListOf) or not isinstance(right, ListOf):
        return None
    joined = join(left, right)
    if not isinstance(joined, ListOf):
        return None
    if isinstance(joined.item, Nothing):
        wanted = _required(expected)
        return wanted if isinstance(wanted, ListOf) else ListOf(Nothing())
    return joined


def _retrieve_is_valid(expr: ast.Retrieve, scope: Scope) -> bool:
    names = [arg.name for arg in expr.args]
    if expr.index not in scope.indexes or len(set(names)) != len(names):
        return False
    if "query" not in names or not set(names) <= {"query", "k"}:
        return False
    for arg in expr.args:
        if arg.name == "query" and infer_type(arg.value, STR, scope) is None:
            return False
        if arg.name == "k" and not (
            isinstance(arg.value, ast.Constant)
            and type(arg.value.value) is int
            and arg.value.value > 0
        ):
            return False
    return True


def _fits(expr: ast.Expr, target: LmType | None, scope: Scope) -> bool:
    found = infer_type(expr, target, scope)
    return found is not None and (target is None or accepts(target, found))


def always_fits(target: LmType | None) -> ast.Expr:
    """A constant expression of type `target`: the fallback when a drawn expression does not fit."""
    if target is None or target == STR:
        return ast.Constant("text")
    if isinstance(target, OptionalOf):
        return always_fits(target.inner)
    if isinstance(target, ListOf):
        return ast.ListExpr(())
    if isinstance(target, OneOf):
        return ast.Constant(target.choices[0])
    if target == INT:
        return ast.Constant(0)
    if target == FLOAT:
        return ast.Constant(0.5)
    if target == BOOL:
        return ast.Constant(False)
    raise ValueError(f"no value has type {target}")


# Expressions ---------------------------------------------------------------------------------


def _constants_for(required: LmType | None) -> st.SearchStrategy[str | int | float | bool] | None:
    if required is None or required == STR:
        return st.one_of(any_text, whole_numbers, decimals, st.booleans())
    if isinstance(required, OneOf):
        return st.sampled_from(required.choices)
    if required == INT:
        return whole_numbers
    if required == FLOAT:
        return st.one_of(decimals, whole_numbers)
    if required == BOOL:
        return st.booleans()
    return None


def draw_expression(draw: DrawFn, target: LmType | None, scope: Scope, depth: int) -> ast.Expr:
    """An expression the checker accepts where a value of type `target` (any, if None) flows."""
    required = _required(target)
    constants = _constants_for(required)
    references = [
        ref for ref, ref_type in scope.references() if target is None or accepts(target, ref_type)
    ]
    may_be_list = target is None or required == STR or isinstance(required, ListOf)
    options: list[str] = []
    if constants is not None:
        options.append("constant")
    if references:
        options += ["reference", "reference"]
    if may_be_list and depth > 0:
        options += ["list", "concat"]
    if scope.indexes and depth > 0 and (target is None or accepts(target, PASSAGES)):
        options.append("retrieve")
    if not options:
        return always_fits(target)
    kind = draw(st.sampled_from(options))
    expr: ast.Expr
    if kind == "constant":
        assert constants is not None
        expr = ast.Constant(draw(constants))
    elif kind == "reference":
        expr = draw(st.sampled_from(references))
    elif kind == "list":
        expr = _draw_list(draw, required, scope, depth - 1)
    elif kind == "concat":
        expr = _draw_concat(draw, target, scope, depth - 1)
    else:
        expr = _draw_retrieve(draw, scope, depth - 1)
    return expr if _fits(expr, target, scope) else always_fits(target)


def _draw_list(draw: DrawFn, required: LmType | None, scope: Scope, depth: int) -> ast.ListExpr:
    """A list literal whose items share one type; items that would not join are left out."""
    item_target = required.item if isinstance(required, ListOf) else None
    if isinstance(item_target, Nothing):
        return ast.ListExpr(())
    item_type: LmType = Nothing()
    kept: list[ast.Expr] = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        item = draw_expression(draw, item_target, scope, depth)
        found = infer_type(item, item_target, scope)
        joined = join(item_type, found) if found is not None else None
        if joined is not None:
            item_type = joined
            kept.append(item)
    return ast.ListExpr(tuple(kept))


def _draw_concat(draw: DrawFn, target: LmType | None, scope: Scope, depth: int) -> ast.Concat:
    required = _required(target)
    left_target = required if isinstance(required, ListOf) else ListOf(draw(lm_types))
    left = draw_expression(draw, left_target, scope, depth)
    left_type = infer_type(left, target, scope)
    right = draw_expression(draw, left_type or left_target, scope, depth)
    return ast.Concat(left, right)


def _draw_retrieve(draw: DrawFn, scope: Scope, depth: int) -> ast.Retrieve:
    index = draw(st.sampled_from(scope.indexes))
    args = [ast.Arg("query", draw_expression(draw, STR, scope, depth))]
    if draw(st.booleans()):
        args.append(ast.Arg("k", ast.Constant(draw(st.integers(min_value=1, max_value=20)))))
    return ast.Retrieve(index, tuple(draw(st.permutations(args))))


# Signatures and indexes ----------------------------------------------------------------------


@st.composite
def signature_specs(draw: DrawFn, name: str | None, *, plain: bool = False) -> SignatureSpec:
    """A signature with 1-3 inputs and 1-2 outputs; `plain` leaves out the instruction and the
    field descriptions, which an inline `"a -> b"` signature cannot say."""
    names = draw(st.lists(field_names, min_size=2, max_size=5, unique=True))
    input_count = draw(st.integers(min_value=1, max_value=min(3, len(names) - 1)))
    output_count = min(2, len(names) - input_count)

    def one_field(field_name: str) -> FieldSpec:
        field_type = draw(lm_types)
        desc = None if plain else draw(st.none() | any_text)
        return FieldSpec(field_name, field_type, desc)

    inputs = tuple(one_field(n) for n in names[:input_count])
    outputs = tuple(one_field(n) for n in names[input_count : input_count + output_count])
    instruction = None if plain else draw(st.none() | instructions)
    return SignatureSpec(name, inputs, outputs, instruction)


def signature_decls(name: str) -> st.SearchStrategy[ast.SignatureDecl]:
    """Long-form signatures, and ones the printer writes in the short string form."""
    return st.one_of(signature_specs(name, plain=True), signature_specs(name, plain=False)).map(
        ast.SignatureDecl
    )


def index_decls(name: str) -> st.SearchStrategy[ast.IndexDecl]:
    return st.builds(
        ast.IndexDecl,
        name=st.just(name),
        kind=st.just("bm25"),
        path=st.one_of(st.just("corpus.jsonl"), any_text),
        text_field=st.one_of(st.just("text"), any_text),
    )


# Statements ----------------------------------------------------------------------------------

# `with temperature=..., max_tokens=..., n=...`: each option or none, in the canonical order;
# samples only where the temperature is above 0.
decoding_options: st.SearchStrategy[tuple[ast.StepOption, ...]] = st.builds(
    lambda temperature, max_tokens, n: tuple(
        ast.StepOption(name, value)
        for name, value in (
            ("temperature", temperature),
            ("max_tokens", max_tokens),
            ("n", n if temperature else None),
        )
        if value is not None
    ),
    st.none() | st.sampled_from([0.0, 0.5, 0.7, 1.0, 2.0]),
    st.none() | st.integers(min_value=1, max_value=4096),
    st.none() | st.integers(min_value=2, max_value=8),
)


def _fresh_name(draw: DrawFn, scope: Scope) -> str:
    taken = scope.names() | set(scope.step_identities)
    return draw(identifiers.filter(lambda name: name not in taken))


def _draw_step_assign(draw: DrawFn, scope: Scope, in_loop: bool) -> ast.Assign:
    """`name = MODULE SIGNATURE(...)`; a name bound to a step before keeps its signature and
    module, and inside a loop only a name that holds such a step now is rebound."""
    rebindable = sorted(scope.steps if in_loop else scope.step_identities)
    if rebindable and draw(st.booleans()):
        target = draw(st.sampled_from(rebindable))
        signature, module = scope.step_identities[target]
        options = scope.step_options[target]
    else:
        if scope.signatures and draw(st.booleans()):
            signature = draw(st.sampled_from(scope.signatures))
        else:
            signature = draw(signature_specs(None, plain=True))
        # An agent needs declared tools, which these programs do not declare; agents have
        # their own tests (tests/runtime/test_agent.py).
        module = draw(st.sampled_from([m for m in MODULE_KINDS if m != "react"]))
        options = draw(decoding_options)
        reusable = sorted(scope.names() - set(scope.step_identities))
        if in_loop or not reusable or draw(st.booleans()):
            target = _fresh_name(draw, scope)
        else:
            target = draw(st.sampled_from(reusable))
    args = [
        ast.Arg(f.name, draw_expression(draw, f.type, scope, EXPRESSION_DEPTH))
        for f in signature.inputs
    ]
    reference: ast.SignatureRef = (
        ast.SignatureRef(None, signature)
        if signature.name is None
        else ast.SignatureRef(signature.name)
    )
    call = ast.StepCall(module, reference, tuple(draw(st.permutations(args))), options=options)
    scope.bind_step(target, signature, module)
    scope.step_options.setdefault(target, options)
    return ast.Assign(target, call)


def _draw_value_assign(draw: DrawFn, scope: Scope, in_loop: bool) -> ast.Assign:
    """`name = expr`; inside a loop a name is rebound only to a value of the type it has."""
    candidates = sorted(scope.values)
    target: str | None = None
    if candidates and draw(st.booleans()):
        target = draw(st.sampled_from(candidates))
    expected_type = scope.values[target] if target is not None and in_loop else None
    value = draw_expression(draw, expected_type, scope, EXPRESSION_DEPTH)
    value_type = infer_type(value, None, scope)
    if value_type is None:
        value = always_fits(None)
        value_type = STR
    if target is None or (in_loop and value_type != scope.values[target]):
        target = _fresh_name(draw, scope)
    scope.bind_value(target, value_type)
    return ast.Assign(target, value)


def _draw_loop(draw: DrawFn, scope: Scope, nesting: int) -> ast.ForLoop:
    var = _fresh_name(draw, scope)
    count = draw(st.integers(min_value=1, max_value=3))
    scope.bind_value(var, INT)
    body = draw_statements(draw, scope, nesting + 1, max_statements=2)
    return ast.ForLoop(var, ast.Constant(count), tuple(body))


def draw_statements(
    draw: DrawFn, scope: Scope, nesting: int, max_statements: int
) -> list[ast.Statement]:
    """Statements that bind names in order; `scope` is updated to what holds after them."""
    kinds = ["step", "value"] + (["loop"] if nesting < MAX_LOOP_NESTING else [])
    statements: list[ast.Statement] = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_statements))):
        kind = draw(st.sampled_from(kinds))
        in_loop = nesting > 0
        if kind == "step":
            statements.append(_draw_step_assign(draw, scope, in_loop))
        elif kind == "value":
            statements.append(_draw_value_assign(draw, scope, in_loop))
        else:
            statements.append(_draw_loop(draw, scope, nesting))
    return statements


# Programs and modules ------------------------------------------------------------------------


def _typed_fields(draw: DrawFn, names: list[str]) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(name, draw(lm_types)) for name in names)


@st.composite
def program_decls(
    draw: DrawFn,
    name: str,
    signatures: tuple[SignatureSpec, ...] = (),
    indexes: tuple[str, ...] = (),
    metric_field: str | None = None,
) -> ast.ProgramDecl:
    """A program whose return binds each result once; it has `metric_field` among its results."""
    param_names = draw(st.lists(identifiers, max_size=3, unique=True))
    result_names = draw(st.lists(identifiers, min_size=1, max_size=2, unique=True))
    if metric_field is not None and metric_field not in result_names:
        position = draw(st.integers(min_value=0, max_value=len(result_names)))
        result_names.insert(position, metric_field)
    params = _typed_fields(draw, param_names)
    results = _typed_fields(draw, result_names)
    scope = Scope(values={p.name: p.type for p in params}, signatures=signatures, indexes=indexes)
    body = draw_statements(draw, scope, nesting=0, max_statements=3)
    bindings = [
        ast.Binding(r.name, draw_expression(draw, r.type, scope, EXPRESSION_DEPTH)) for r in results
    ]
    body.append(ast.Return(tuple(draw(st.permutations(bindings)))))
    return ast.ProgramDecl(name, params, results, tuple(body))


@st.composite
def modules(draw: DrawFn, max_programs: int = 2) -> ast.Module:
    """A whole file `check` accepts: up to 3 signatures, 2 indexes, `max_programs` programs and
    maybe a metric, declared in any order."""
    signature_count = draw(st.integers(min_value=0, max_value=3))
    index_count = draw(st.integers(min_value=0, max_value=2))
    program_count = draw(st.integers(min_value=1, max_value=max_programs))
    names = draw(
        st.lists(
            identifiers,
            min_size=signature_count + index_count + program_count,
            max_size=signature_count + index_count + program_count,
            unique=True,
        )
    )
    signature_names = names[:signature_count]
    index_names = names[signature_count : signature_count + index_count]
    program_names = names[signature_count + index_count :]
    signatures = [draw(signature_decls(n)) for n in signature_names]
    indexes = [draw(index_decls(n)) for n in index_names]
    metric_field = draw(st.none() | identifiers)
    programs = [
        draw(
            program_decls(
                n,
                tuple(s.signature for s in signatures),
                tuple(index_names),
                metric_field,
            )
        )
        for n in program_names
    ]
    declarations: list[ast.Declaration] = [*signatures, *indexes, *programs]
    if metric_field is not None:
        metric_name = draw(st.sampled_from(BUILTIN_METRICS))
        declarations.append(ast.MetricDecl(metric_name, metric_field))
    return ast.Module(tuple(draw(st.permutations(declarations))))


def single_signature_modules(instruction: st.SearchStrategy[str]) -> st.SearchStrategy[ast.Module]:
    """A file with one long-form signature whose instruction is drawn from `instruction`."""

    @st.composite
    def build(draw: DrawFn) -> ast.Module:
        spec = draw(signature_specs(draw(identifiers)))
        text = draw(instruction)
        return ast.Module(
            (ast.SignatureDecl(SignatureSpec(spec.name, spec.inputs, spec.outputs, text)),)
        )

    return build()


comment_texts: st.SearchStrategy[str] = st.text(_LINE_CHARACTERS, max_size=8).map(
    lambda text: f"# {text}"
)


@st.composite
def commented_sources(draw: DrawFn) -> tuple[ast.Module, str]:
    """A module and its printed text with comments added on their own lines and at line ends,
    anywhere but inside a `\"\"\"` block (where a `#` is instruction text, not a comment)."""
    module = draw(modules())
    lines: list[str] = []
    in_text_block = False
    for line in print_module(module).removesuffix("\n").split("\n"):
        if not in_text_block and draw(st.integers(min_value=0, max_value=4)) == 0:
            indent = " " * draw(st.integers(min_value=0, max_value=8))
            lines.append(indent + draw(comment_texts))
        if line.strip() == '"""':
            in_text_block = not in_text_block
        if not in_text_block and draw(st.integers(min_value=0, max_value=3)) == 0:
            line = f"{line}{' ' * draw(st.integers(min_value=0, max_value=3))}{draw(comment_texts)}"
        lines.append(line)
    if draw(st.booleans()):
        lines.append(draw(comment_texts))
    return module, "\n".join(lines) + "\n"


__all__ = [
    "Scope",
    "always_fits",
    "any_text",
    "commented_sources",
    "docstring_text",
    "identifiers",
    "infer_type",
    "lm_types",
    "modules",
    "program_decls",
    "signature_decls",
    "single_signature_modules",
]
