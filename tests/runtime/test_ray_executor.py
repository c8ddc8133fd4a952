"""The Ray executor against the local one, on a local Ray cluster of two CPUs.

The model is the fault server (tests/faultserver.py) answering by what it was asked: a real
served endpoint on 127.0.0.1 that every worker process calls, as a cluster's workers would call
a served model. Each comparison runs the same records on both executors and asks for the same
results, in input order, each once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, Request, answering
from programs import QA

import lmc
from lmc.cli.main import EXIT_OK, main
from lmc.ir.graph import ProgramGraph
from lmc.runtime.context import Budget, BudgetExhausted, RunContext
from lmc.runtime.evaluate import evaluate
from lmc.runtime.executor import RecordResult, run_records
from lmc.runtime.metrics import builtin

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lmc[ray]'")

pytestmark = pytest.mark.ray

# A function step that kills the worker process it runs in, once (see `dies_once` below).
FRAGILE = """\
signature Answer = "question -> answer"

function Checkpoint = "fragile:dies_once" {
    input  question: str
    input  marker:   str
    output checked:  str
}

program Fragile(question: str, marker: str) -> (answer: str) {
    seen = call Checkpoint(question=question, marker=marker)
    gen = predict Answer(question=seen.checked)
    return answer = gen.answer
}
"""

FRAGILE_MODULE = """\
import os
import signal
from pathlib import Path


def dies_once(question, marker):
    # The first worker to run question q5 dies at once (SIGKILL: no cleanup, no reply).
    if question == "q5" and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return question
"""


def answer_of(request: Request) -> str:
    """`yes` for an even question number, `no` for an odd one: the last `qN` of the prompt."""
    prompt = request.body["messages"][-1]["content"]
    number = int(re.findall(r"q(\d+)", prompt)[-1])
    return json.dumps({"answer": "yes" if number % 2 == 0 else "no"})


def answer_after_demos(request: Request) -> str:
    """As `answer_of` where the prompt shows a demo (another `qN`), else `maybe` for odd numbers:
    a model that demos make better."""
    prompt = json.dumps(request.body["messages"])
    number = int(re.findall(r"q(\d+)", prompt)[-1])
    if len(re.findall(r"q(\d+)", prompt)) == 1 and number % 2:
        return json.dumps({"answer": "maybe"})
    return answer_of(request)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray of two CPUs, for the module's tests; shut down after them."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def served(cluster: None) -> Iterator[FaultServer]:
    with FaultServer(otherwise=answering(answer_of)) as server:
        yield server


@pytest.fixture
def executor(cluster: None) -> Iterator[Any]:
    from lmc.runtime.ray_executor import RayExecutor

    made = RayExecutor(workers=2)
    yield made
    made.close()


def questions(count: int) -> list[dict[str, Any]]:
    return [{"question": f"q{i}"} for i in range(count)]


def run_all(context: RunContext, graph: ProgramGraph, records: Any) -> list[RecordResult]:
    async def collect() -> list[RecordResult]:
        return [result async for result in run_records(context, graph, records)]

    return asyncio.run(collect())


def on(server: FaultServer, executor: Any = "local", **options: Any) -> RunContext:
    return lmc.context("openai/x", api_base=server.url, executor=executor, **options)


def test_results_match_the_local_executor_in_input_order(
    served: FaultServer, executor: Any
) -> None:
    graph = lmc.loads(QA).ir
    local = on(served, cache=False)
    spread = on(served, executor, cache=False, concurrency=3)

    expected = run_all(local, graph, questions(30))
    got = run_all(spread, graph, questions(30))

    assert [(r.index, r.outputs, r.error) for r in got] == [
        (r.index, r.outputs, r.error) for r in expected
    ]
    assert [r.index for r in got] == list(range(30))
    # The workers' counts come back to the job: the same calls and tokens.
    assert spread.stats.total().calls == local.stats.total().calls == 30
    assert spread.stats.total().prompt_tokens == local.stats.total().prompt_tokens


def test_workers_share_the_on_disk_cache(served: FaultServer, executor: Any) -> None:
    graph = lmc.loads(QA).ir
    run_all(on(served), graph, questions(10))
    calls = served.calls

    spread = on(served, executor)
    got = run_all(spread, graph, questions(10))

    assert served.calls == calls  # every answer came from the cache the local run filled
    assert spread.stats.total().cache_hits == 10
    assert [r.outputs for r in got] == [
        {"answer": "yes" if i % 2 == 0 else "no"} for i in range(10)
    ]


def test_records_are_read_as_results_go_out(served: FaultServer, executor: Any) -> None:
    graph = lmc.loads(QA).ir
    spread = on(served, executor, cache=False, concurrency=2)
    window = 2 * 2  # workers x records in flight on each
    read = 0

    def stream() -> Iterator[dict[str, Any]]:
        nonlocal read
        for record in questions(40):
            read += 1
            yield record

    ahead = []

    async def collect() -> None:
        async for result in run_records(spread, graph, stream()):
            ahead.append(read - (result.index + 1))

    asyncio.run(collect())
    assert len(ahead) == 40
    assert max(ahead) <= window


def test_a_worker_that_dies_has_its_records_run_again_elsewhere(
    served: FaultServer, executor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fragile.py").write_text(FRAGILE_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # workers import from the job's import path
    marker = tmp_path / "died"
    graph = lmc.loads(FRAGILE).ir
    records = [{"question": f"q{i}", "marker": str(marker)} for i in range(12)]

    got = run_all(on(served, executor, cache=False), graph, records)

    assert marker.exists()  # a worker did die, on q5
    assert [r.index for r in got] == list(range(12))
    assert [r.error for r in got] == [None] * 12
    assert [r.outputs for r in got] == [
        {"answer": "yes" if i % 2 == 0 else "no"} for i in range(12)
    ]


def test_an_evaluation_scores_and_captures_as_the_local_one(
    served: FaultServer, executor: Any
) -> None:
    graph = lmc.loads(QA).ir
    examples = [{"question": f"q{i}", "answer": "yes"} for i in range(12)]
    inputs = [{"question": e["question"]} for e in examples]
    metric = builtin("exact_match", "answer")

    expected = evaluate(on(served, cache=False), graph, examples, inputs, metric, capture=True)
    got = evaluate(on(served, executor, cache=False), graph, examples, inputs, metric, capture=True)

    assert got.scores == expected.scores
    assert got.predictions == expected.predictions
    assert got.calls == expected.calls  # what bootstrap-demos learns from
    assert [c.calls for c in got.costs] == [c.calls for c in expected.costs]


def test_a_compile_on_the_cluster_learns_what_the_local_one_learns(
    cluster: None, executor: Any
) -> None:
    served = FaultServer(otherwise=answering(answer_after_demos))
    program = lmc.loads(QA)
    train = [{"question": f"q{i}", "answer": "yes" if i % 2 == 0 else "no"} for i in range(16)]
    options: dict[str, Any] = {
        "trainset": train,
        "metric": "exact_match(answer)",
        "pipeline": "bootstrap-demos{max_demos=2,candidates=2}",
        "budget_calls": 200,
        "progress": False,
    }

    with served:
        local = lmc.compile(program, lm=on(served, cache=False), **options)
        spread = lmc.compile(program, lm=on(served, executor, cache=False), **options)

    assert spread.to_lmp() == local.to_lmp()
    assert "demo" in spread.to_lmp()


def test_the_budget_holds_across_workers(served: FaultServer, executor: Any) -> None:
    graph = lmc.loads(QA).ir
    spread = on(served, executor, cache=False)
    spread.budget = Budget(5)

    with pytest.raises(BudgetExhausted, match="budget of 5 LM calls"):
        run_all(spread, graph, questions(20))
    assert spread.budget.used == 5
    # Records a worker had started when the budget ran out go on, unread, to their end: the
    # calls they were lent reach the server after the run has stopped, and no call beyond them.
    assert settled_calls(served) == 5


def settled_calls(served: FaultServer, quiet: float = 1.0, limit: float = 30.0) -> int:
    """The server's call count once no new call has come for `quiet` seconds."""
    deadline = time.monotonic() + limit
    seen, since = served.calls, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.05)
        if served.calls != seen:
            seen, since = served.calls, time.monotonic()
    return seen


def test_lmc_run_data_on_ray_writes_what_the_local_run_writes(
    served: FaultServer, cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    Path("in.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in questions(20)), encoding="utf-8"
    )
    model = ["--lm", "openai/x", "--api-base", served.url, "--no-cache"]

    assert main(["run", "qa.lmp", "--data", "in.jsonl", "--out", "local.jsonl", *model]) == EXIT_OK
    spread = ["--executor", "ray", "--workers", "2", "--out", "ray.jsonl", "--trace", "t.jsonl"]
    assert main(["run", "qa.lmp", "--data", "in.jsonl", *spread, *model]) == EXIT_OK

    assert Path("ray.jsonl").read_text() == Path("local.jsonl").read_text()
    assert len(Path("ray.jsonl").read_text().splitlines()) == 20
    # The workers' calls are in the job's trace, one line each, under their record numbers.
    traced = [json.loads(line) for line in Path("t.jsonl").read_text().splitlines()]
    assert sorted(line["record"] for line in traced) == list(range(1, 21))


def test_lmc_eval_on_ray_scores_as_the_local_eval(
    served: FaultServer, cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    examples = [{"question": f"q{i}", "answer": "yes"} for i in range(10)]
    Path("dev.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    common = ["eval", "qa.lmp", "--data", "dev.jsonl", "--metric", "exact_match(answer)"]
    model = ["--lm", "openai/x", "--api-base", served.url, "--no-cache"]

    assert main([*common, *model, "--out", "local.jsonl"]) == EXIT_OK
    spread = ["--executor", "ray", "--workers", "2", "--out", "ray.jsonl"]
    assert main([*common, *model, *spread]) == EXIT_OK

    def scores(name: str) -> list[Any]:
        return [json.loads(line)["score"] for line in Path(name).read_text().splitlines()]

    assert scores("ray.jsonl") == scores("local.jsonl") == [1.0, 0.0] * 5
