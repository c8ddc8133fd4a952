"""What the commands that call an LM share (`run`, `eval`, `compile`, `opt`): the run context
their options ask for, the failures that end their work (exit 1), and a dataset progress bar."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from lmc.cli.errors import UsageError
from lmc.files import check_writable, one_file
from lmc.plugins import PYTHON_RETRIEVER

if TYPE_CHECKING:
    from lmc.compiler.program import Program
    from lmc.runtime.context import RunContext
    from lmc.runtime.stats import StepStats

FilePath = str | os.PathLike[str]


class Output(NamedTuple):
    """A file a command will write: the `option` naming it (`--out`), its `path` (None when the
    option is not given), and `what` goes there (`the results`), as the messages say them."""

    option: str
    path: FilePath | None
    what: str
    default: bool = False  # the path is where the option writes when it is not given
    # The file is opened and written where it is (a trace), not written beside it and renamed
    # over it: it needs no permission to write in its folder if it exists.
    in_place: bool = False

    def shown(self) -> str:
        path = os.fspath(self.path or "")
        return f"{path}, the default {self.option}," if self.default else f"{self.option} {path}"


def check_outputs(outputs: list[Output], reads: Mapping[str, FilePath | None]) -> None:
    """Every file the options name for writing can be written, is none of the files the command
    reads (`reads`: what each is, `the --data file`, by its path) and is no other output's file:
    checked before the first LM call and before anything is opened for writing, so no command
    spends calls and then cannot keep what they bought, nor overwrites the data it was given to
    read, nor writes one output over another (a report over the artifact it describes)."""
    given = [(output, output.path) for output in outputs if output.path is not None]
    for number, (output, path) in enumerate(given):
        where = f" with {output.option} FILE" if output.default else ""
        for read, read_path in reads.items():
            if read_path is not None and one_file(path, read_path):
                raise UsageError(
                    f"{output.shown()} is {read}; write {output.what} elsewhere{where}"
                )
        for earlier, earlier_path in given[:number]:
            if one_file(path, earlier_path):
                raise UsageError(
                    f"{output.shown()} is the {earlier.option} file too; write {output.what} "
                    f"elsewhere{where}"
                )
        check_writable(path, in_place=output.in_place)


def program_reads(program_file: str, program: Program) -> dict[str, FilePath | None]:
    """The files a program is read from, for `check_outputs`: its file and each index's corpus
    (a Python retriever names code, not a file)."""
    reads: dict[str, FilePath | None] = {"the program file": program_file}
    for name, index in program.ir.indexes.items():
        if index.kind != PYTHON_RETRIEVER:
            reads[f"the corpus of index {name}"] = index.path
    return reads


def compiled_for(program: Program) -> tuple[str | None, str | None, str | None]:
    """The model, backend and server address a compiled program runs on unless the options say
    otherwise."""
    info = program.compiled
    return (info.lm, info.backend, info.api_base) if info is not None else (None, None, None)


def run_context(
    args: argparse.Namespace,
    default_lm: str | None = None,
    default_backend: str | None = None,
    default_api_base: str | None = None,
    *,
    lm: str | None = None,
    traced: bool = True,
) -> RunContext:
    """The run context the options ask for: `lm` (a compile's teacher), else `--lm`, else
    `default_lm` (what an artifact was compiled for), else the default model; likewise the
    backend, and the server of that model unless another model is named. Without `traced`,
    `--trace` is left for the caller to open."""
    from lmc.plugins import EXECUTORS
    from lmc.runtime.context import DEFAULT_BACKEND, context

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    timeout, retries = getattr(args, "timeout", None), getattr(args, "retries", None)
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout must be more than 0 seconds, not {timeout:g}")
    if retries is not None and retries < 0:
        raise UsageError(f"--retries must be 0 or more, not {retries}")
    return context(
        lm or args.lm or default_lm,
        backend=args.backend or default_backend or DEFAULT_BACKEND,
        api_base=args.api_base or (None if lm or args.lm else default_api_base),
        cache=not getattr(args, "no_cache", False),
        trace=getattr(args, "trace", None) if traced else None,
        concurrency=args.concurrency,
        timeout=timeout,
        retries=retries,
        executor=EXECUTORS.load(getattr(args, "executor", "local"))(
            address=getattr(args, "ray_address", None), workers=getattr(args, "workers", None)
        ),
    )


def loops_closed(total: StepStats) -> str | None:
    """A warning when the model looped in some replies and lmc closed the string (the embedded
    model, `grammar_check`): those fields end inside the loop. None when none looped."""
    if not total.loops_closed:
        return None
    strings = "string" if total.loops_closed == 1 else "strings"
    return (
        f"the model repeated itself in {total.loops_closed} {strings}; lmc closed each once the "
        "loop was plain, so those fields end inside the loop (`--trace` marks the calls: "
        "`loops_closed`)"
    )


def model_work(total: StepStats, elapsed: float) -> str | None:
    """What the model read and wrote in a run of `elapsed` seconds, and how fast over that wall
    time: the prompt tokens it evaluated (not those it reused from an earlier prompt's prefix,
    nor any answered by the cache) and the tokens it generated. None when it made no call."""
    if total.calls == 0 or elapsed <= 0:
        return None
    read, reused = total.evaluated_prompt_tokens, total.reused_prompt_tokens
    unknown = total.reuse_unknown
    if unknown == 0:
        how = f"read {read} prompt tokens ({reused} more reused from earlier prompts)"
    elif unknown == total.calls:
        how = f"read at most {read} prompt tokens (it did not say how many it reused)"
    else:
        how = (
            f"read at most {read} prompt tokens ({reused} more reused; {unknown} of "
            f"{total.calls} calls did not say)"
        )
    wrote = total.model_completion_tokens
    return (
        f"the model {how} at {read / elapsed:.1f} tokens/s and wrote {wrote} at "
        f"{wrote / elapsed:.1f} tokens/s"
    )
