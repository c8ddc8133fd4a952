"""Each command's arguments, apart from the code that runs it.

`lmc.cli.main` builds the whole parser from these (for `lmc --help`, and to parse any command)
and imports a command's module only to run it; so this module imports nothing heavy.
"""

from __future__ import annotations

import argparse

from lmc.cli import options
from lmc.passes.pipeline import DEFAULT_PIPELINE
from lmc.plugins import INDEX_KINDS

Parser = argparse.ArgumentParser


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, found {text!r}")
    return value


def check(parser: Parser) -> None:
    parser.add_argument("files", nargs="+", metavar="PROGRAM.lmp")


def fmt(parser: Parser) -> None:
    parser.add_argument("files", nargs="+", metavar=options.ANY_PROGRAM)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    mode.add_argument("-w", "--write", action="store_true", help="rewrite files in place")


def show(parser: Parser) -> None:
    options.program_file(parser)
    parser.add_argument(
        "-o",
        "--output",
        help="picture to write: .svg, .png, .pdf or .dot (default: PROGRAM_NAME.svg)",
    )
    parser.add_argument(
        "--lmp",
        action="store_true",
        help="print the program (a compiled one with what it learned) as .lmp text instead",
    )


def opt(parser: Parser) -> None:
    options.program_file(parser)
    options.pipeline(parser, default=None)
    parser.add_argument("-o", "--output", help="write the program here instead of stdout")
    options.compile_inputs(parser, train_required=False)
    options.corpora(parser)
    options.model(parser)
    options.executor(parser)


def run(parser: Parser) -> None:
    options.program_file(parser)
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="one input (repeat for each); text as written, other types as JSON",
    )
    parser.add_argument("--json", action="store_true", help="print the outputs as one JSON object")
    parser.add_argument("--data", metavar="IN.jsonl", help="run every record of a dataset")
    parser.add_argument(
        "--out",
        metavar="OUT.jsonl",
        help="where a dataset run's results go, each as it finishes; a rerun resumes",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip records --out already holds results for (default); --no-resume starts over",
    )
    parser.add_argument(
        "--max-errors",
        type=_at_least_one,
        metavar="N",
        help="stop a dataset run after N failed records (default: run them all)",
    )
    options.corpora(parser)
    options.model(parser)
    options.executor(parser)
    options.call_log(parser)


def trace_show(parser: Parser) -> None:
    parser.add_argument("trace_file", metavar="TRACE.jsonl")
    parser.add_argument(
        "-n", type=options.at_least(0), default=None, metavar="N", help="only the first N calls"
    )


def none(parser: Parser) -> None:
    """A command without arguments."""


def evaluate(parser: Parser) -> None:
    options.program_file(parser)
    parser.add_argument(
        "--data", required=True, metavar="DATA.jsonl", help="examples: inputs and expected outputs"
    )
    parser.add_argument(
        "--metric",
        metavar="NAME(FIELD)|package.module:function",
        help="how to score (default: the artifact's metric, else the file's metric declaration)",
    )
    parser.add_argument("--out", metavar="RESULTS.jsonl", help="per-example results, as JSONL")
    parser.add_argument(
        "--report",
        metavar="REPORT.html",
        help="also write a page of the evaluation: per-example scores, the confusion table of "
        "a literal output, the slowest and costliest examples",
    )
    options.corpora(parser)
    options.model(parser)
    options.executor(parser)
    options.call_log(parser)


def compile_(parser: Parser) -> None:
    options.program_file(parser, metavar="PROGRAM.lmp")
    options.pipeline(parser, default=f"{DEFAULT_PIPELINE}, made leaner to fit --budget-calls")
    options.compile_inputs(parser, train_required=True)
    options.corpora(parser)
    options.model(parser)
    options.executor(parser)
    parser.add_argument("-o", "--output", help="artifact to write (default: NAME.compiled.json)")
    parser.add_argument(
        "--report",
        metavar="REPORT.html",
        help="also write the compile report, as `lmc report` does: graph, passes, chart, prompts",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on after an interrupted compile (completed LM calls come from the cache)",
    )


def report(parser: Parser) -> None:
    options.program_file(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="REPORT.html",
        help="the page to write (default: the file's name with .report.html, here)",
    )


def index_build(parser: Parser) -> None:
    parser.add_argument("corpus", metavar="CORPUS.jsonl")
    parser.add_argument("--text", default="text", help="the field holding each passage")
    parser.add_argument(
        "--kind", default="bm25", help=f"index kind: {INDEX_KINDS.described()} (default: bm25)"
    )
