"""`lmc opt`: the program after a pipeline of passes, as `.lmp` text (like `mlir-opt`).

Structural passes run on the program alone. A pass that scores the program (to keep a change
only if the metric allows it, or to learn demos and instructions) needs data: with `--train`,
the pipeline runs as `lmc compile` runs it (same inputs, budget, cache); without, such a pass
stops `opt` with a usage error naming `--train`. The program goes to stdout (or `-o FILE`); what
the passes say goes to stderr as `# ...` lines, so `opt FILE 2>&1` reads as one `.lmp` file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lmc.backends.clients.unreachable import Unreachable
from lmc.cli.compile import (
    compile_contexts,
    compile_inputs,
    compile_with_options,
    training_reads,
)
from lmc.cli.errors import EXIT_OK, UsageError
from lmc.cli.loading import load_program, open_corpora
from lmc.cli.running import Output, check_outputs
from lmc.compiler.program import Program
from lmc.compiler.session import pass_line, plan_line
from lmc.files import write_atomically
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import print_program
from lmc.passes.base import CompileContext, Pass
from lmc.passes.manager import verify_between
from lmc.passes.pipeline import parse_pipeline
from lmc.plugins import BACKENDS
from lmc.runtime.context import DEFAULT_BACKEND, RunContext
from lmc.runtime.data import Dataset, hash_records
from lmc.runtime.evaluate import Evaluation
from lmc.runtime.functions import import_callables
from lmc.runtime.metrics import Metric
from lmc.strings import printable

# Options that only mean something when the passes learn from data (`--train`).
DATA_OPTIONS = (
    *("dev", "metric", "teacher_lm", "budget_calls"),
    *("lm", "api_base", "backend", "timeout", "retries"),
)


class NeedsData(Exception):
    """A pass asked for a score, and `opt` was given no data to score on."""


def run(args: argparse.Namespace) -> int:
    program = load_program(args.program_file, args.program, args.corpus or [])
    check_outputs([Output("-o", args.output, "the program")], training_reads(args, program))
    if args.train:  # the passes run the program: its corpora are read now, as compile's are
        open_corpora(program)
        graph = _with_data(args, program)
    else:
        graph = _without_data(args, program)
    if args.output:
        target = Path(args.output)
        text = print_program(graph, os.path.dirname(os.path.abspath(target)))
        try:
            write_atomically(target, text.encode("utf-8"))
        except OSError as error:
            raise UsageError(f"{target}: cannot write it ({error.strerror})") from None
    else:
        sys.stdout.write(print_program(graph, os.path.dirname(os.path.abspath(args.program_file))))
    return EXIT_OK


def _say(message: str) -> None:
    # Passes quote what they learned (an LM's proposed instruction): escaped for the terminal.
    print(f"# {printable(message)}", file=sys.stderr, flush=True)


def _with_data(args: argparse.Namespace, program: Program) -> ProgramGraph:
    """The pipeline as `lmc compile` runs it: checked inputs, a baseline, a budget, a pass log."""
    inputs = compile_inputs(args, program)
    metric = inputs[0]
    import_callables(program.ir)
    student, teacher = compile_contexts(args)
    compiled = compile_with_options(
        args,
        program,
        inputs,
        student,
        teacher,
        say=_say,
        on_record=lambda record: _say(pass_line(record, metric.label)),
        on_plan=lambda stages: _say(plan_line(stages, args.budget_calls)),
    )
    return compiled.program.ir


def _without_data(args: argparse.Namespace, program: Program) -> ProgramGraph:
    """Each pass in turn, the graph verified around it; a pass that scores stops `opt`."""
    for name in DATA_OPTIONS:
        if getattr(args, name) is not None:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} is for passes that learn from data: add --train DATA")
    passes = parse_pipeline(args.pipeline)
    context = _no_data_context(args.seed)
    graph = program.ir
    for a_pass in passes:
        graph = _apply(a_pass, graph, context)
    return graph


def _apply(a_pass: Pass, graph: ProgramGraph, context: CompileContext) -> ProgramGraph:
    try:
        verify_between(graph, "before", a_pass.name)
        result = a_pass.apply(graph, context)
        verify_between(result, "after", a_pass.name)
    except NeedsData:
        raise UsageError(
            f"{a_pass.name} scores the program on data to decide: add --train DATA "
            "(and --metric if the file declares none)"
        ) from None
    return result


class _WithoutData(CompileContext):
    """What passes see when `opt` has no data: asking for a score raises `NeedsData`."""

    def score(self, *args: Any, **kwargs: Any) -> Evaluation:
        raise NeedsData


def _no_data_context(seed: int) -> CompileContext:
    nothing = Dataset("no data", (), (), hash_records([]))
    no_metric = Metric("none", None, lambda example, prediction, trace: 0.0)
    context = RunContext(
        lm=Unreachable("no model", NeedsData),  # only scoring calls an LM, and it refuses first
        backend=BACKENDS.load(DEFAULT_BACKEND)(),
        cache=None,
    )
    return _WithoutData(context, context, nothing, nothing, no_metric, seed, _say)
