"""Run a pipeline of passes: verify the graph around each, measure what each bought and cost.

For every pass the log holds the dev metric before and after, the LM calls (cache hits apart),
tokens and wall time. A pass that runs out of budget stops; the program it had is kept.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmc.errors import RunError
from lmc.ir.graph import ProgramGraph
from lmc.passes.base import CompileContext, Pass, calls_per_run
from lmc.passes.record import CandidateScore, PassRecord
from lmc.passes.selection import gain_between
from lmc.runtime.context import BudgetExhausted
from lmc.runtime.stats import StepStats


class PassBroke(RunError):
    """A pass produced an invalid graph: a bug in lmc, reported with the pass's name."""


class BaselineFailed(RunError):
    """Every dev example failed before any pass ran (an LM that cannot be reached, a model that
    never keeps the format): nothing can be measured, so nothing is compiled, and an artifact
    the user already has is not replaced by one that learned nothing."""


@dataclass
class CompileResult:
    program: ProgramGraph
    baseline: float
    records: list[PassRecord]

    @property
    def final(self) -> float:
        return self.records[-1].metric_after if self.records else self.baseline


def options_of(a_pass: Pass) -> dict[str, Any]:
    return {f.name: getattr(a_pass, f.name) for f in dataclasses.fields(a_pass)}  # type: ignore[arg-type]


def projection(
    program: ProgramGraph, pipeline: list[Pass], context: CompileContext
) -> list[tuple[str, int]]:
    """The most LM calls each stage may make: the baseline score, then every pass."""
    stages = [("baseline on dev", len(context.dev) * calls_per_run(program))]
    # Each pass is projected on the largest program the passes before it may leave (a pass that
    # adds demos says so with `projected_program`), so prune-demos counts the demos it will try.
    largest = program
    for a_pass in pipeline:
        stages.append((a_pass.name, a_pass.projected_calls(largest, context)))
        grow = getattr(a_pass, "projected_program", None)
        if grow is not None:
            largest = grow(largest, context)
    return stages


def _spent(context: CompileContext) -> StepStats:
    total = context.run.stats.total()
    if context.teacher is not context.run:
        total.add(context.teacher.stats.total())
    return total


def _refuse_when_every_example_failed(errors: list[str | None]) -> None:
    if errors and all(error is not None for error in errors):
        raise BaselineFailed(
            f"every one of the {len(errors)} dev examples failed before any pass ran, so nothing "
            f"can be measured and nothing was compiled; the first: {errors[0]}"
        )


def _carried_score(
    a_pass: Pass, current: ProgramGraph, candidate: ProgramGraph, context: CompileContext
) -> float | None:
    """`current`'s dev score, now also `candidate`'s, where the pass keeps outputs and every dev
    example ran clean: a step the pass removed could have failed one (a record fails with any of
    its steps), and the result would then score higher. Remembered for `candidate`, so the passes
    after it and the artifact's dev misses have it, without the calls of the removed steps (a
    pass reading calls takes its demos from them)."""
    if not getattr(a_pass, "keeps_outputs", False):
        return None
    known = context.known_score(current)
    if known is None or any(error is not None for error in known.errors):
        return None
    context.remember(candidate, context.dev, dataclasses.replace(known, calls=[], costs=[]))
    return known.score


def verify_between(program: ProgramGraph, when: str, name: str) -> None:
    problems = program.verify()
    if problems:
        listed = "; ".join(p.message for p in problems)
        raise PassBroke(f"the program is invalid {when} {name}: {listed}")


def run_pipeline(
    program: ProgramGraph,
    pipeline: list[Pass],
    context: CompileContext,
    *,
    on_record: Callable[[PassRecord, ProgramGraph], None] = lambda record, program: None,
    done: list[PassRecord] | None = None,
) -> CompileResult:
    """Apply the passes in order. `done` (from a checkpoint) are passes already applied to
    `program`; they are kept in the log and not run again."""
    records = list(done or [])
    if records:
        baseline = records[0].metric_before
    else:
        scored = context.score(program)
        _refuse_when_every_example_failed(scored.errors)
        baseline = scored.score
    current, score = program, (records[-1].metric_after if records else baseline)
    for a_pass in pipeline[len(records) :]:
        verify_between(current, "before", a_pass.name)
        spent, started = _spent(context), time.perf_counter()
        notes: list[str] = []
        say = context.say

        def note(message: str, notes: list[str] = notes, say: Callable[[str], None] = say) -> None:
            notes.append(message)
            say(message)

        candidates: list[CandidateScore] = []

        def record_candidate(
            label: str,
            mean: float,
            examples: int,
            kept: bool,
            detail: str | None,
            spent: StepStats = spent,
            candidates: list[CandidateScore] = candidates,
        ) -> None:
            calls = _spent(context).calls - spent.calls
            candidates.append(CandidateScore(label, calls, mean, examples, kept, detail))

        scoped = dataclasses.replace(context, say=note, on_candidate=record_candidate)
        try:
            candidate = a_pass.apply(current, scoped)
        except BudgetExhausted as exhausted:
            note(f"{exhausted}: {a_pass.name} stopped; the program before it is kept")
            candidate = current
        verify_between(candidate, "after", a_pass.name)
        gain = None
        try:
            # Passes return new graphs; an equal one needs no new score, nor does one that
            # answers as the program before it did (see `Pass.projected_calls`).
            if candidate == current:
                after = score
            elif (carried := _carried_score(a_pass, current, candidate, context)) is not None:
                after = carried
            else:
                after = context.score(candidate).score
                gain = gain_between(context, current, candidate)
        except BudgetExhausted:
            note("no budget left to score the result; the program before the pass is kept")
            candidate, after, gain = current, score, None
        cost = _spent(context)
        record = PassRecord(
            name=a_pass.name,
            options=options_of(a_pass),
            metric_before=score,
            metric_after=after,
            calls=cost.calls - spent.calls,
            cached=cost.cache_hits - spent.cache_hits,
            prompt_tokens=cost.prompt_tokens - spent.prompt_tokens,
            completion_tokens=cost.completion_tokens - spent.completion_tokens,
            seconds=round(time.perf_counter() - started, 2),
            calls_per_run=calls_per_run(candidate),
            notes=notes,
            gain=None if gain is None else gain.to_json(),
            candidates=candidates,
        )
        records.append(record)
        on_record(record, candidate)
        current, score = candidate, after
    return CompileResult(current, baseline, records)
