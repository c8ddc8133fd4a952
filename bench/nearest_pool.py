"""The program `dynamic-demos` proposes, without its dev gate: to measure the construct itself.

    .venv/bin/python bench/nearest_pool.py PROGRAM.lmp --train TRAIN.jsonl \\
        [--k 3] [--pool 256] [--kind bm25] [--seed 0] [-o OUT.lmp] [--recall DATA.jsonl ...]

Every step that train records name gets the pool the pass would give it (the same seeded choice
of at most `--pool` records, in train order), shown its `--k` nearest per input. The pass keeps
such a program only when its dev gain holds; `-o` writes it either way, so `lmc eval` can say
what it scores on held-out data. `--recall` says, for a one-step program, how often the demos a
record of DATA is shown include its expected output (the most a model that copies one could
score). No LM call is made.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.ir.graph import NearestDemos, ProgramGraph
from lmc.passes.base import CompileContext
from lmc.passes.dynamic_demos import DynamicDemosPass
from lmc.runtime.data import load_dataset
from lmc.runtime.metrics import builtin
from lmc.runtime.nearest import shown_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("program", type=Path)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--pool", type=int, default=256)
    parser.add_argument("--kind", default="bm25")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--recall", type=Path, nargs="*", default=[])
    args = parser.parse_args()

    program = lmc.load(args.program)
    train = load_dataset(args.train, program.inputs)
    no_lm = lmc.context(FakeLM(()), cache=False)  # proposing a pool calls no LM
    context = CompileContext(
        run=no_lm,
        teacher=no_lm,
        train=train,
        dev=train,
        metric=builtin("exact_match", program.outputs[0].name),
        seed=args.seed,
    )
    a_pass = DynamicDemosPass(k=args.k, pool=args.pool, kind=args.kind)
    graph = program.ir.copy()
    for key, demos in a_pass.labeled(graph, context).items():
        nearest = NearestDemos(args.k, tuple(demos), args.kind)
        graph.params[key] = replace(graph.params[key], nearest=nearest)
        print(f"{key}: a pool of {len(demos)} demos, the {args.k} nearest by {args.kind}")
    if args.output is not None:
        lmc.Program(graph).save(args.output)
    for path in args.recall:
        print(f"{path}: {recall(graph, path):.2f} of records are shown their expected output")


def recall(graph: ProgramGraph, path: Path) -> float:
    """The share of `path`'s records whose expected output (the program's, read from the one
    step's output field of that name) is among the outputs of the demos they are shown."""
    [step] = graph.steps()
    [output] = graph.outputs()
    [(source, wire)] = graph.incoming(output.id)
    assert source == step.id, "the program's output must be its step's"
    program = lmc.Program(graph)
    data = load_dataset(path, program.inputs, (output.name,))
    shown = 0
    for example, inputs in zip(data.examples, data.inputs, strict=True):
        params = shown_params(graph.params[step.param_key], step.signature, inputs)
        outputs = [dict(d.fields).get(wire.source_field) for d in params.demos]
        shown += example[output.name] in outputs
    return shown / len(data)


if __name__ == "__main__":
    main()
