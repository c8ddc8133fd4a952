"""Check a parsed `.lmp` file and lower each program to its `ProgramGraph`.

Declarations are checked here, program bodies in `lower_program`; every error in the file is
collected before any is reported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lmc.diagnostics import Diagnostic, Diagnostics, ProgramError, Span, quoted_list
from lmc.ir.graph import MetricRef, ProgramGraph
from lmc.ir.lower_program import ProgramLowering
from lmc.plugins import INDEX_KINDS, METRICS
from lmc.signatures import check_signature
from lmc.strings import quote
from lmc.syntax import tree as ast


@dataclass(frozen=True)
class CheckedModule:
    """A file that passed every check: its syntax, and one graph per program."""

    module: ast.Module
    graphs: dict[str, ProgramGraph]
    source: str = field(compare=False, default="")


def check(
    module: ast.Module,
    source: str = "",
    base_dir: str = ".",
    diagnostics: Diagnostics | None = None,
) -> CheckedModule:
    """Check a whole file; raise `ProgramError` listing every error (with any in `diagnostics`)."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    broken = _check_declarations(module, diagnostics)
    graphs = {
        p.name: ProgramLowering(p, module, base_dir, diagnostics, broken).run()
        for p in module.programs()
    }
    _check_metric(module, diagnostics)
    declared = module.metric()
    for graph in graphs.values():
        graph.metric = MetricRef(declared.name, declared.field) if declared else None
    diagnostics.raise_if_any({module.file: source} if source else {})
    for graph in graphs.values():
        if problems := graph.verify():
            raise AssertionError(f"lowering produced an invalid graph: {problems}")
    return CheckedModule(module, graphs, source)


def _check_declarations(module: ast.Module, diagnostics: Diagnostics) -> set[str]:
    """Check names and signatures; return the signatures whose errors are already reported."""
    broken: set[str] = set()
    first: dict[str, ast.Declaration] = {}
    metrics = 0
    for decl in module.declarations:
        if isinstance(decl, ast.MetricDecl):
            metrics += 1
            if metrics > 1:
                diagnostics.error(decl.span, "a file declares at most one metric")
            continue
        if decl.name in first:
            earlier = first[decl.name]
            diagnostics.error(
                decl.name_span,
                f"duplicate declaration '{decl.name}': already declared as "
                f"{_kind_of(earlier)} at line {earlier.span.line}",
            )
        else:
            first[decl.name] = decl
        if isinstance(decl, ast.SignatureDecl):
            valid = decl.valid and check_signature(decl.signature, diagnostics, decl.name_span)
            if not valid:
                broken.add(decl.name)
        elif isinstance(decl, ast.FunctionDecl):
            valid = check_signature(decl.signature, diagnostics, decl.name_span, "function")
            if not _TARGET.fullmatch(decl.function.target):
                diagnostics.error(
                    decl.target_span,
                    f'expected where the function is, as "package.module:function"; found '
                    f"{quote(decl.function.target)}",
                )
                valid = False
            if not valid:
                broken.add(decl.name)
        elif isinstance(decl, ast.IndexDecl) and decl.kind not in INDEX_KINDS:
            diagnostics.error(decl.kind_span, INDEX_KINDS.unknown(decl.kind))
    return broken


def _check_metric(module: ast.Module, diagnostics: Diagnostics) -> None:
    metric = module.metric()
    if metric is None:
        return
    if metric.name not in METRICS:
        diagnostics.error(metric.name_span, METRICS.unknown(metric.name))
    for program in module.programs():
        results = [r.name for r in program.results]
        if metric.field not in results:
            diagnostics.error(
                metric.field_span,
                f"metric field '{metric.field}' is not a result of program {program.name}; "
                f"expected {quoted_list(results)}",
            )


# `package.module:function` (or `module:Class.method`): the form import paths are named in.
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _kind_of(decl: ast.Declaration) -> str:
    kinds = {
        ast.SignatureDecl: "a signature",
        ast.FunctionDecl: "a function",
        ast.IndexDecl: "an index",
        ast.ProgramDecl: "a program",
        ast.MetricDecl: "a metric",
    }
    return kinds[type(decl)]


def load_text(text: str, file: str = "<string>") -> CheckedModule:
    """Parse and check `.lmp` source; relative index paths resolve against the file's folder."""
    from lmc.syntax.parser import parse

    diagnostics = Diagnostics()
    module = parse(text, file, diagnostics)
    base = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else os.getcwd()
    try:
        return check(module, text, base, diagnostics)
    except ProgramError as error:
        raise ProgramError(error.diagnostics, {file: text}) from None


def select(checked: CheckedModule, name: str | None, how: str = "program=") -> ProgramGraph:
    """The graph of the program called `name`, or of the file's only program."""
    module = checked.module
    names = list(checked.graphs)
    whole_file = Span(module.file, 1, 1, 1, 1)
    if name is None:
        if len(names) != 1:
            found = f"{len(names)} programs ({quoted_list(names)})" if names else "no program"
            raise ProgramError(
                [
                    Diagnostic(
                        whole_file,
                        f"expected one program to run; the file has {found}"
                        + (f": choose one with {how}NAME" if names else ""),
                    )
                ],
                {module.file: checked.source},
            )
        name = names[0]
    if name not in checked.graphs:
        raise ProgramError(
            [
                Diagnostic(
                    whole_file, f"no program named '{name}'; the file has {quoted_list(names)}"
                )
            ],
            {module.file: checked.source},
        )
    return checked.graphs[name]
