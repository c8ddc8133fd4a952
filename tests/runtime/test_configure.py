"""Which model an eager call runs on, as a DSPy user expects: `lmc.configure(...)` at top level is
the process default, `with lmc.configure(...)` scopes a block, and threads and tasks started inside a
block see it. Every LM here is a `FakeLM` that names itself in its answers."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lmc
from lmc.backends.clients.fake import FakeLM
from lmc.runtime.context import HISTORY


def named(name: str) -> FakeLM:
    return FakeLM(lambda request: f'{{"answer": "{name}"}}', identity=name)


def ask() -> str:
    answer: str = lmc.Predict("question -> answer")(question="which model?").answer
    return answer


def ask_in_thread() -> str:
    answers: list[str] = []
    thread = threading.Thread(target=lambda: answers.append(ask()))
    thread.start()
    thread.join()
    return answers[0]


def test_a_top_level_configure_is_the_default_for_every_later_call() -> None:
    lmc.configure(named("served"), cache=False)

    assert ask() == "served"
    assert ask_in_thread() == "served"


def test_a_later_top_level_configure_replaces_the_earlier_one() -> None:
    lmc.configure(named("first"), cache=False)
    lmc.configure(named("second"), cache=False)

    assert ask() == "second"


def test_a_with_block_scopes_its_model_and_leaves_the_default_as_it_was() -> None:
    lmc.configure(named("default"), cache=False)

    with lmc.configure(named("block"), cache=False):
        inside = ask()

    assert (inside, ask()) == ("block", "default")


def test_lmc_context_makes_a_context_without_touching_the_default() -> None:
    lmc.configure(named("default"), cache=False)

    explicit = lmc.context(named("explicit"), cache=False)

    assert ask() == "default"
    with explicit:
        assert ask() == "explicit"


def test_a_thread_started_inside_a_block_sees_the_block() -> None:
    lmc.configure(named("default"), cache=False)

    with lmc.configure(named("block"), cache=False):
        inside = ask_in_thread()

    assert (inside, ask_in_thread()) == ("block", "default")


def test_a_thread_pool_started_inside_a_block_sees_the_block() -> None:
    with lmc.configure(named("block"), cache=False), ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: ask(), range(4)))

    assert answers == ["block"] * 4


def test_a_thread_already_running_keeps_its_model_while_another_thread_opens_a_block() -> None:
    # A server's request thread must not pick up the model another request scoped to itself.
    lmc.configure(named("default"), cache=False)
    block_open, asked = threading.Event(), threading.Event()
    answers: list[str] = []

    def request() -> None:
        block_open.wait()
        answers.append(ask())
        asked.set()

    worker = threading.Thread(target=request)
    worker.start()
    with lmc.configure(named("block"), cache=False):
        block_open.set()
        asked.wait()
    worker.join()

    assert answers == ["default"]


def test_tasks_started_inside_a_block_see_it() -> None:
    async def main() -> list[str]:
        with lmc.configure(named("block"), cache=False):
            task = asyncio.create_task(asyncio.to_thread(ask))
            in_thread = await asyncio.to_thread(ask)
            return [await task, in_thread]

    lmc.configure(named("default"), cache=False)

    assert asyncio.run(main()) == ["block", "block"]


def test_the_innermost_block_wins_in_threads_started_inside_it() -> None:
    with lmc.configure(named("outer"), cache=False):
        with lmc.configure(named("inner"), cache=False):
            inner = ask_in_thread()
        outer = ask_in_thread()

    assert (inner, outer) == ("inner", "outer")


def test_compile_without_an_lm_uses_the_configured_model() -> None:
    fake = named("Paris")
    lmc.configure(fake, cache=False)
    program = lmc.loads(
        'signature QA {\n  """Answer."""\n  input question: str\n  output answer: str\n}\n'
        "program P(question: str) -> (answer: str) {\n"
        "  gen = predict QA(question=question)\n  return answer = gen.answer\n}\n"
    )
    train = [{"question": f"q{i}", "answer": "Paris"} for i in range(3)]

    compiled = lmc.compile(
        program, trainset=train, metric="exact_match(answer)", pipeline="bootstrap-demos"
    )

    assert fake.requests, "the compile ran on the configured model"
    assert compiled(question="q").answer == "Paris"


def test_inspect_history_prints_the_last_calls_of_the_current_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lmc.configure(named("served"), cache=False)
    lmc.Predict("question -> answer")(question="first question")
    lmc.Predict("question -> answer")(question="second question")

    lmc.inspect_history(n=1)

    shown = capsys.readouterr().out
    assert "second question" in shown
    assert "first question" not in shown
    assert '"answer": "served"' in shown


def test_a_contexts_history_holds_its_last_calls_as_the_trace_file_writes_them(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "calls.jsonl"
    context = lmc.context(named("served"), cache=False, trace=str(trace))
    for i in range(HISTORY + 3):
        with context:
            lmc.Predict("question -> answer")(question=f"question {i}")
    assert context.trace is not None
    context.trace.close()

    written = [json.loads(line) for line in trace.read_text("utf-8").splitlines()]
    assert len(context.history) == HISTORY
    assert list(context.history) == written[-HISTORY:]
    assert context.history[-1]["request"]["messages"][-1]["content"].startswith(
        f"question:\nquestion {HISTORY + 2}"
    )


def test_calls_a_worker_made_join_the_history_after_the_calls_made_here() -> None:
    """A cluster's worker sends its calls back as trace lines; `inspect_history` shows them in
    the order they arrived, beside calls this process made."""
    context = lmc.context(named("served"), cache=False)
    with context:
        lmc.Predict("question -> answer")(question="asked here")
    from_worker = {"kind": "call", "request": {"messages": [{"content": "asked on a worker"}]}}

    context.history.extend([from_worker])

    assert len(context.history) == 2
    assert "asked here" in context.history[0]["request"]["messages"][-1]["content"]
    assert list(context.history)[-1] == from_worker


def test_a_model_made_with_lm_is_recorded_by_its_string(monkeypatch: pytest.MonkeyPatch) -> None:
    made = ServedLM()
    monkeypatch.setattr("lmc.backends.clients.open_lm", lambda model, api_base=None, **_: made)

    client = lmc.LM("openai/some-model", api_base="http://127.0.0.1:1/v1")

    assert lmc.context(client, cache=False).model == "openai/some-model"
    assert lmc.context(FakeLM(), cache=False).model is None  # a client lmc did not make


class ServedLM(FakeLM):
    """A client as `LM(...)` makes them: an object compared by identity."""

    __hash__ = object.__hash__
    __eq__ = object.__eq__
