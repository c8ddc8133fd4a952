"""Calling the LM for one step: lower, answer (from the cache or the model), parse, repair once;
and a step sampled `n` times, whose answer is the most common one.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from lmc.backends.base import LMCallFailed, LMRequest, LMResponse, ReplyError, StepView
from lmc.errors import RecordFailure
from lmc.runtime.context import RunContext
from lmc.runtime.trace import call_line
from lmc.signatures import NO_OPTIONS, REASONING, StepOptions
from lmc.strings import without_lone_surrogates


class StepFailed(RecordFailure):
    """A step's reply could not be used, even after one repair call."""

    def __init__(self, step: str, message: str, reply: str):
        super().__init__(f"step '{step}': the reply could not be used after one repair: {message}")
        self.step = step
        self.message = message
        self.reply = reply


class RecordDropped(Exception):
    """The record this work is for was dropped (Ctrl-C, `--max-errors`, a spent budget) and
    nobody reads its result: its worker thread, which cannot be cancelled, makes no further LM
    call (an agent's next turn, a repair, a chain's next step)."""

    def __init__(self) -> None:
        super().__init__("the run stopped before this record finished")


# Set by the executor for each record it runs: worker threads inherit it with the context.
record_dropped: ContextVar[threading.Event | None] = ContextVar("lmc_record_dropped", default=None)


def stop_if_dropped() -> None:
    dropped = record_dropped.get()
    if dropped is not None and dropped.is_set():
        raise RecordDropped


def complete(context: RunContext, step: str, request: LMRequest) -> LMResponse:
    """One LM call of `step`, answered from the cache when it can be. The caller keeps the
    answer in the cache (`remember`) once it knows the reply was usable."""
    stop_if_dropped()
    cache, lm = context.cache, context.lm
    if cache is not None:
        hit = cache.get(lm.identity, request)
        if hit is not None:
            return hit
    with context.lm_gate().call(step):
        # Spent once the call has its slot: a call still waiting when the work is stopped was
        # never made, and a resumed compile's budget must not count it.
        if context.budget is not None:
            context.budget.spend()
        return lm.complete(request)


def remember(context: RunContext, answered: list[tuple[LMRequest, LMResponse]]) -> None:
    """Cache the calls that led to a usable reply (a repaired reply's first try included: the
    repair request shows it). A reply that stayed unusable is never cached as an answer, so a
    rerun asks the model again instead of failing the same way."""
    if context.cache is None:
        return
    for request, response in answered:
        if not response.cached:
            context.cache.put(context.lm.identity, request, response)


def call_step(
    context: RunContext,
    step_id: str,
    view: StepView,
    inputs: dict[str, Any],
    record: int | None = None,
    *,
    options: StepOptions = NO_OPTIONS,
    sample: int = 0,
    observe: bool = True,
) -> dict[str, Any]:
    """Lower, call, parse; one repair call if the reply does not parse. Blocking.

    `observe=False` keeps the call from the context's `on_step` observer: a part of a step (one
    sample, an agent's iteration) whose step reports its outcome once, as a whole."""
    backend, lm = context.backend, context.lm
    request = _decoded(backend.lower(view, inputs, lm), options, sample)
    answered: list[tuple[LMRequest, LMResponse]] = []
    for attempt in (1, 2):
        try:
            response = complete(context, step_id, request)
        except LMCallFailed as error:
            # Traced as a call with no reply: a record the model never answered shows why.
            unanswered = LMResponse("")
            _trace(context, record, step_id, attempt, request, unanswered, None, error.message)
            raise error.at_step(step_id) from None
        answered.append((request, response))
        context.stats.record_call(step_id, response, repair=attempt == 2)
        if context.on_call is not None:
            context.on_call(record, response)
        try:
            if attempt == 1:
                parsed = backend.parse(view, response.text)
            else:
                parsed = backend.parse_repaired(view, response.text, answered[0][1].text)
            parsed = {name: without_lone_surrogates(value) for name, value in parsed.items()}
        except ReplyError as error:
            _trace(context, record, step_id, attempt, request, response, None, error.message)
            if attempt == 2:
                context.stats.record_failure(step_id)
                raise StepFailed(step_id, error.message, error.reply) from None
            request = backend.repair(view, request, response.text, error, lm)
            continue
        _trace(context, record, step_id, attempt, request, response, parsed, None)
        remember(context, answered)
        if observe and context.on_step is not None:
            context.on_step(record, step_id, inputs, parsed)
        return parsed
    raise AssertionError("unreachable")


def _trace(
    context: RunContext,
    record: int | None,
    step: str,
    attempt: int,
    request: LMRequest,
    response: LMResponse,
    parsed: dict[str, Any] | None,
    error: str | None,
) -> None:
    parts: dict[str, Any] = {
        "record": record,
        "step": step,
        "backend": context.backend.name,
        "model": context.lm.identity,
        "attempt": attempt,
        "request": request,
        "response": response,
        "parsed": parsed,
        "error": error,
    }
    context.history.add(parts)
    if context.trace is not None:
        context.trace.call(call_line(**parts))


def _decoded(request: LMRequest, options: StepOptions, sample: int) -> LMRequest:
    """The request with the step's own decoding options, where it sets them."""
    if options.temperature is None and options.max_tokens is None and sample == 0:
        return request  # most steps set none: no copy to make
    return replace(
        request,
        temperature=request.temperature if options.temperature is None else options.temperature,
        max_tokens=request.max_tokens if options.max_tokens is None else options.max_tokens,
        sample=sample,
    )


def run_step(
    context: RunContext,
    step_id: str,
    view: StepView,
    options: StepOptions,
    inputs: dict[str, Any],
    record: int | None = None,
) -> dict[str, Any]:
    """A step's outputs: one call, or with `n` above 1 the most common of `n` samples."""
    if options.n == 1:
        return call_step(context, step_id, view, inputs, record, options=options)
    samples: list[dict[str, Any]] = []
    failures: list[StepFailed] = []
    for i in range(options.n):
        try:
            samples.append(
                call_step(
                    context, step_id, view, inputs, record, options=options, sample=i, observe=False
                )
            )
        except StepFailed as failure:  # a sample that stayed unusable has no vote
            failures.append(failure)
    if not samples:
        raise failures[0]
    chosen = most_common(samples)
    if context.on_step is not None:
        context.on_step(record, step_id, inputs, chosen)
    return chosen


def most_common(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample whose answer (every field but `reasoning`) the most samples give; of equally
    common answers, the one sampled first. Whole samples are kept, so a chosen answer keeps the
    reasoning that led to it."""

    def answer(sample: dict[str, Any]) -> str:
        fields = {k: v for k, v in sample.items() if k != REASONING}
        return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)

    counts = Counter(answer(s) for s in samples)
    best = max(counts.values())
    return next(s for s in samples if counts[answer(s)] == best)
