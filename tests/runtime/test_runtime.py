"""The runtime: steps in dependency order, independent steps at the same time, one repair call
for an unusable reply, the trace, dataset runs, eager calls and retrieval without an index.

Every LM here is a `FakeLM` answering from a function of the request; none is a real model.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.runtime.evaluate import evaluate
from lmc.runtime.executor import RecordResult, RetrievalUnavailable, run_records
from lmc.runtime.metrics import builtin
from lmc.runtime.steps import StepFailed
from lmc.runtime.trace import read_trace, show_trace

CHAIN = '''
signature Count {
    """Count the words."""
    input  text: str
    output n:    int
}

signature Judge {
    """Judge the count."""
    input  n:    int
    output ok:   bool
    output tags: list[str]
}

program Chain(text: str) -> (n: int, ok: bool, tags: list[str]) {
    c = predict Count(text=text)
    j = predict Judge(n=c.n)
    return n = c.n, ok = j.ok, tags = j.tags
}
'''

BOTH = '''
signature Left {
    """Write the left side."""
    input  text: str
    output left: str
}

signature Right {
    """Write the right side."""
    input  text:  str
    output right: str
}

program Both(text: str) -> (left: str, right: str) {
    l = predict Left(text=text)
    r = predict Right(text=text)
    return left = l.left, right = r.right
}
'''

ONE_STEP = """
signature Answer = "question -> answer"

program QA(question: str) -> (answer: str) {
    gen = predict Answer(question=question)
    return answer = gen.answer
}
"""

RAG = '''
signature GenerateAnswer {
    """Answer from the passages."""
    input  context:  list[str]
    input  question: str
    output answer:   str
}

index wiki = bm25("corpus.jsonl", text="text")

program RAG(question: str) -> (answer: str) {
    passages = retrieve wiki(query=question, k=3)
    gen = predict GenerateAnswer(context=passages, question=question)
    return answer = gen.answer
}
'''


def instruction(request: LMRequest) -> str:
    """The first line of the system prompt: which step a request is for."""
    return request.messages[0].content.splitlines()[0]


def first_input(request: LMRequest) -> str:
    """The value of the (single) input field, from the request's first user message: the text
    between `name:` and the first blank line (none of the values here has one)."""
    return request.messages[1].content.split("\n", 1)[1].split("\n\n", 1)[0]


def by_step(replies: dict[str, str]) -> Callable[[LMRequest], str]:
    return lambda request: replies[instruction(request)]


class InFlight:
    """Counts LM calls running at the same moment, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


# order and types ---------------------------------------------------------------------------------


def test_steps_run_in_dependency_order_and_outputs_are_typed() -> None:
    fake = FakeLM(
        by_step(
            {
                "Count the words.": '{"n": 3}',
                "Judge the count.": '{"ok": true, "tags": ["short", "plain"]}',
            }
        )
    )
    context = lmc.context(fake, backend="json", cache=False)

    outputs = lmc.loads(CHAIN).run({"text": "a b c"}, context)

    assert [instruction(r) for r in fake.requests] == ["Count the words.", "Judge the count."]
    # The second step is shown the first step's typed output.
    assert first_input(fake.requests[1]) == "3"
    assert outputs == lmc.Prediction(n=3, ok=True, tags=["short", "plain"])
    assert type(outputs.n) is int
    assert type(outputs.ok) is bool
    assert outputs.tags == ["short", "plain"]


# concurrency -------------------------------------------------------------------------------------


def test_independent_steps_are_in_flight_at_the_same_time() -> None:
    both_called = threading.Barrier(2, timeout=5)
    in_flight = InFlight()

    def reply(request: LMRequest) -> str:
        with in_flight.call():
            both_called.wait()  # breaks (and the run fails) unless both calls are in flight
        side = "left" if instruction(request) == "Write the left side." else "right"
        return json.dumps({side: side.upper()})

    context = lmc.context(FakeLM(reply, max_concurrency=2), cache=False)

    outputs = lmc.loads(BOTH).run({"text": "x"}, context)

    assert outputs == lmc.Prediction(left="LEFT", right="RIGHT")
    assert in_flight.peak == 2


def test_max_concurrency_one_runs_independent_steps_one_after_another() -> None:
    in_flight = InFlight()

    def reply(request: LMRequest) -> str:
        with in_flight.call():
            time.sleep(0.05)  # room for a second call to overlap, were it allowed to
        side = "left" if instruction(request) == "Write the left side." else "right"
        return json.dumps({side: side.upper()})

    fake = FakeLM(reply, max_concurrency=1)
    context = lmc.context(fake, cache=False)

    outputs = lmc.loads(BOTH).run({"text": "x"}, context)

    assert outputs == lmc.Prediction(left="LEFT", right="RIGHT")
    assert len(fake.requests) == 2
    assert in_flight.peak == 1


def test_evaluations_at_the_same_time_on_one_context_keep_to_the_models_concurrency() -> None:
    in_flight = InFlight()

    def reply(request: LMRequest) -> str:
        with in_flight.call():
            time.sleep(0.02)  # room for another call to overlap, were it allowed to
        return json.dumps({"answer": "a"})

    fake = FakeLM(reply, max_concurrency=1)
    context = lmc.context(fake, cache=False, concurrency=4)
    graph = lmc.loads(ONE_STEP).ir
    examples = [{"question": f"q{i}", "answer": "a"} for i in range(4)]
    inputs = [{"question": e["question"]} for e in examples]
    metric = builtin("exact_match", "answer")
    scores: list[float] = []

    def score() -> None:
        scores.append(evaluate(context, graph, examples, inputs, metric).score)

    both = [threading.Thread(target=score) for _ in range(2)]  # two candidates scored at once
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()

    assert scores == [1.0, 1.0]
    assert len(fake.requests) == 8
    assert in_flight.peak == 1


# repair and failure ------------------------------------------------------------------------------


def test_an_unparsable_reply_gets_exactly_one_repair_call() -> None:
    fake = FakeLM(["I think the answer is Paris.", '{"answer": "Paris"}'])
    context = lmc.context(fake, cache=False)

    outputs = lmc.loads(ONE_STEP).run({"question": "Capital of France?"}, context)

    assert outputs == lmc.Prediction(answer="Paris")
    stats = context.stats.steps["gen"]
    assert (stats.calls, stats.repairs, stats.failures) == (2, 1, 0)
    # The repair call shows the model its own reply and what was wrong with it.
    repair = fake.requests[1]
    assert repair.messages[: len(fake.requests[0].messages)] == fake.requests[0].messages
    assert repair.messages[-2].role == "assistant"
    assert repair.messages[-2].content == "I think the answer is Paris."
    assert "not a JSON object" in repair.messages[-1].content


def test_a_second_unusable_reply_fails_the_step_with_the_raw_reply() -> None:
    fake = FakeLM(["no json here", '{"wrong_key": 1}'])
    context = lmc.context(fake, cache=False)

    with pytest.raises(StepFailed) as failure:
        lmc.loads(ONE_STEP).run({"question": "q"}, context)

    assert failure.value.step == "gen"
    assert failure.value.reply == '{"wrong_key": 1}'
    assert "'answer'" in failure.value.message
    assert len(fake.requests) == 2
    stats = context.stats.steps["gen"]
    assert (stats.calls, stats.repairs, stats.failures) == (2, 1, 1)


# trace -------------------------------------------------------------------------------------------


def test_trace_has_one_line_per_call_with_both_attempts_of_a_repair(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    fake = FakeLM(["not json", '{"answer": "Paris"}'])
    context = lmc.context(fake, cache=False, trace=str(path))

    lmc.loads(ONE_STEP).run({"question": "Capital of France?"}, context)
    assert context.trace is not None
    context.trace.close()

    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert (first["step"], first["attempt"], second["step"], second["attempt"]) == (
        "gen",
        1,
        "gen",
        2,
    )
    assert first["request"] == fake.requests[0].to_json()
    assert first["request"]["messages"][-1]["content"].startswith("question:\nCapital of France?")
    assert first["reply"] == "not json"
    assert first["parsed"] is None
    assert first["error"] == "the reply is not a JSON object"
    assert second["request"] == fake.requests[1].to_json()
    assert second["reply"] == '{"answer": "Paris"}'
    assert second["parsed"] == {"answer": "Paris"}
    assert second["error"] is None
    assert first["model"] == "fake"
    assert first["backend"] == "json"


# datasets ----------------------------------------------------------------------------------------


def collect(
    context: lmc.RunContext, program: lmc.Program, records: list[dict[str, str]]
) -> list[RecordResult]:
    return asyncio.run(collect_async(context, program, records))


async def collect_async(
    context: lmc.RunContext, program: lmc.Program, records: list[dict[str, str]]
) -> list[RecordResult]:
    return [result async for result in run_records(context, program.ir, records)]


def test_dataset_results_come_in_input_order_with_bounded_concurrency() -> None:
    in_flight = InFlight()
    second_answered = threading.Event()

    def reply(request: LMRequest) -> str:
        question = first_input(request)
        with in_flight.call():
            if question == "q0":
                # The first record finishes after the second: only possible when both are in
                # flight, and its result must still come first.
                second_answered.wait(timeout=5)
        if question == "q1":
            second_answered.set()
        return json.dumps({"answer": f"a-{question}"})

    fake = FakeLM(reply, max_concurrency=64)
    context = lmc.context(fake, cache=False, concurrency=2)
    records = [{"question": f"q{i}"} for i in range(6)]

    results = collect(context, lmc.loads(ONE_STEP), records)

    assert [r.index for r in results] == list(range(6))
    assert [r.inputs for r in results] == records
    assert [r.outputs for r in results] == [{"answer": f"a-q{i}"} for i in range(6)]
    assert all(r.error is None and r.reply is None for r in results)
    assert in_flight.peak == 2


DRAFT_THEN_POLISH = """
signature Draft = "question -> draft"
signature Polish = "draft -> answer"

program Chain(question: str) -> (answer: str) {
    d = predict Draft(question=question)
    p = predict Polish(draft=d.draft)
    return answer = p.answer
}
"""


AGENT = """
function Add = "pyfunctions:add" {
    input  a:   float
    input  b:   float
    output sum: float
}

signature Solve = "question -> answer"

program Agent(question: str) -> (answer: str) {
    solved = react Solve(question=question) with tools=[Add], max_iters=3
    return answer = solved.answer
}
"""

BESIDE = """
signature Answer = "question -> answer"

program Both(question: str) -> (one: str, two: str) {
    a = predict Answer(question=question)
    b = predict Answer(question="other")
    return one = a.answer, two = b.answer
}
"""

# What the held first call answers: each reply asks for one more LM call (the chain's next step,
# the agent's next turn, a repair), which must not be made once the record is dropped.
NEXT_CALL_AFTER_THE_DROP = {
    "a chain's next step": (DRAFT_THEN_POLISH, json.dumps({"draft": "a draft"})),
    "an agent's next turn": (
        AGENT,
        json.dumps({"thought": "add", "action": {"tool": "Add", "args": {"a": 1, "b": 2}}}),
    ),
    "a repair": (ONE_STEP, "garbage"),
    "a repair beside another step": (BESIDE, "garbage"),
}


@pytest.mark.parametrize(
    ("program", "held_reply"),
    list(NEXT_CALL_AFTER_THE_DROP.values()),
    ids=list(NEXT_CALL_AFTER_THE_DROP),
)
def test_a_record_dropped_while_its_call_is_in_flight_makes_no_further_call(
    program: str, held_reply: str
) -> None:
    held, released = threading.Event(), threading.Event()
    first = threading.Lock()

    def reply(request: LMRequest) -> str:
        if first_input(request) == "other":  # the step beside, not held
            return json.dumps({"answer": "x"})
        if first.acquire(blocking=False):  # the first call: held until the run is dropped
            held.set()
            released.wait(timeout=5)
            return held_reply
        raise AssertionError(f"asked after the drop: {request.to_json()}")

    fake = FakeLM(reply, max_concurrency=4)
    context = lmc.context(fake, cache=False, concurrency=1)

    async def drop_while_held() -> None:
        run = asyncio.ensure_future(collect_async(context, lmc.loads(program), [{"question": "q"}]))
        while not held.is_set():
            await asyncio.sleep(0.001)
        run.cancel()  # Ctrl-C, --max-errors or a spent budget stops the run here
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(drop_while_held())
    released.set()
    assert context.workers is not None
    context.workers.shutdown(wait=True)  # the held call has come back and its thread is done

    assert len([r for r in fake.requests if first_input(r) != "other"]) == 1


def test_a_failing_record_carries_its_error_and_reply_and_the_others_succeed() -> None:
    def reply(request: LMRequest) -> str:
        question = first_input(request)
        return "garbage" if question == "bad" else json.dumps({"answer": question.upper()})

    context = lmc.context(FakeLM(reply), cache=False, concurrency=3)
    records = [{"question": q} for q in ("one", "bad", "three")]

    results = collect(context, lmc.loads(ONE_STEP), records)

    assert [r.outputs for r in results] == [{"answer": "ONE"}, None, {"answer": "THREE"}]
    failed = results[1]
    assert failed.index == 1
    assert failed.inputs == {"question": "bad"}
    assert failed.error is not None
    assert "gen" in failed.error
    assert "not a JSON object" in failed.error
    assert failed.reply == "garbage"
    assert context.stats.steps["gen"].failures == 1


# eager calls -------------------------------------------------------------------------------------


def test_eager_predict_uses_the_enclosing_configure() -> None:
    fake = FakeLM(['{"n": 3}'])

    with lmc.configure(fake) as context:
        prediction = lmc.Predict("text -> n: int")(text="a b c")

    assert isinstance(prediction, lmc.Prediction)
    assert prediction.n == 3
    assert len(fake.requests) == 1
    assert first_input(fake.requests[0]) == "a b c"
    assert context.stats.total().calls == 1


def test_the_innermost_configure_wins_and_the_outer_one_comes_back() -> None:
    outer = FakeLM(['{"answer": "outer 1"}', '{"answer": "outer 2"}'], identity="outer")
    inner = FakeLM(['{"answer": "inner"}'], identity="inner")
    step = lmc.Predict("question -> answer")

    with lmc.configure(outer, cache=False):
        first = step(question="q")
        with lmc.configure(inner, cache=False):
            middle = step(question="q")
        last = step(question="q")

    assert (first.answer, middle.answer, last.answer) == ("outer 1", "inner", "outer 2")
    assert (len(outer.requests), len(inner.requests)) == (2, 1)


def test_calling_a_program_returns_a_prediction_on_the_current_context() -> None:
    fake = FakeLM(
        by_step(
            {
                "Count the words.": '{"n": 2}',
                "Judge the count.": '{"ok": false, "tags": []}',
            }
        )
    )
    program = lmc.loads(CHAIN)

    with lmc.configure(fake, cache=False):
        prediction = program(text="a b")

    assert isinstance(prediction, lmc.Prediction)
    assert prediction == lmc.Prediction(n=2, ok=False, tags=[])
    assert len(fake.requests) == 2


# retrieval ---------------------------------------------------------------------------------------


def test_retrieve_without_a_loaded_index_names_the_index() -> None:
    fake = FakeLM(['{"answer": "x"}'])
    context = lmc.context(fake, cache=False)

    with pytest.raises(RetrievalUnavailable, match="'wiki'"):
        lmc.loads(RAG).run({"question": "q"}, context)

    assert fake.requests == []


def test_an_lm_call_that_failed_is_in_the_trace_with_its_error(tmp_path: Path) -> None:
    from lmc.backends.base import LMCallFailed
    from lmc.backends.clients.hosted import HostedLMError

    def reply(request: LMRequest) -> str:
        raise HostedLMError("openai/x: ServiceUnavailableError: 503 the server is down")

    path = tmp_path / "trace.jsonl"
    fake = FakeLM(reply)
    context = lmc.context(fake, cache=False, trace=str(path))

    with pytest.raises(LMCallFailed):
        lmc.loads(ONE_STEP).run({"question": "Capital of France?"}, context)
    assert context.trace is not None
    context.trace.close()

    (line,) = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert (line["step"], line["attempt"], line["reply"], line["parsed"]) == ("gen", 1, "", None)
    assert line["request"] == fake.requests[0].to_json()
    assert line["error"] == "openai/x: ServiceUnavailableError: 503 the server is down"
    assert read_trace(path)  # `lmc trace show` reads it
    show_trace(read_trace(path), Console(file=io.StringIO()))
