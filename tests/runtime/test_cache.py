"""The LM response cache: what hits and what misses, several processes on one file, no secrets in
it, and a program's second run answered without an LM call."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import lmc
from lmc.backends.base import LMRequest, LMResponse, Message
from lmc.backends.clients.fake import FakeLM
from lmc.backends.clients.hosted import HostedLM
from lmc.runtime.cache import ResponseCache, cache_dir

REQUEST = LMRequest(
    messages=(
        Message("system", "Answer briefly."),
        Message("user", "question:\nCapital of France?"),
    ),
    json_schema='{"type": "object"}',
)
RESPONSE = LMResponse(
    text='{"answer": "Paris"}', prompt_tokens=12, completion_tokens=5, latency_s=0.8
)

ONE_STEP = """
signature Answer = "question -> answer"

program QA(question: str) -> (answer: str) {
    gen = predict Answer(question=question)
    return answer = gen.answer
}
"""


def test_a_response_put_is_got_back(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")

    cache.put("model-a", REQUEST, RESPONSE)
    hit = cache.get("model-a", REQUEST)

    assert hit is not None
    assert (hit.text, hit.prompt_tokens, hit.completion_tokens) == (RESPONSE.text, 12, 5)


def test_a_hit_is_marked_cached_and_is_a_fresh_object_each_time(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("model-a", REQUEST, RESPONSE)

    first = cache.get("model-a", REQUEST)
    second = cache.get("model-a", REQUEST)

    assert first is not None
    assert second is not None
    assert first.cached
    assert second.cached
    assert first.latency_s == 0.0
    assert first is not second
    assert first == second


def test_a_hit_survives_a_new_cache_object_on_the_same_file(tmp_path: Path) -> None:
    ResponseCache(tmp_path / "cache.sqlite").put("model-a", REQUEST, RESPONSE)

    hit = ResponseCache(tmp_path / "cache.sqlite").get("model-a", REQUEST)

    assert hit is not None
    assert hit.text == RESPONSE.text


def test_another_model_request_or_temperature_misses(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("model-a", REQUEST, RESPONSE)
    other_question = LMRequest(
        messages=(REQUEST.messages[0], Message("user", "question:\nCapital of Spain?")),
        json_schema=REQUEST.json_schema,
    )
    warmer = LMRequest(messages=REQUEST.messages, json_schema=REQUEST.json_schema, temperature=0.7)
    longer = LMRequest(messages=REQUEST.messages, json_schema=REQUEST.json_schema, max_tokens=64)

    assert cache.get("model-b", REQUEST) is None
    assert cache.get("model-a", other_question) is None
    assert cache.get("model-a", warmer) is None
    assert cache.get("model-a", longer) is None
    assert cache.get("model-a", REQUEST) is not None


def test_stats_count_entries_by_model_and_clear_removes_them(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    for model, question in (("model-a", "one"), ("model-a", "two"), ("model-b", "one")):
        cache.put(model, LMRequest(prompt=question), RESPONSE)

    stats = cache.stats()
    assert stats.path == tmp_path / "cache.sqlite"
    assert stats.entries == 3
    assert stats.models == {"model-a": 2, "model-b": 1}
    assert stats.bytes > 0

    assert cache.clear() == 3
    assert cache.stats().entries == 0
    assert cache.stats().models == {}
    assert cache.get("model-a", LMRequest(prompt="one")) is None


def test_stats_and_clear_of_a_missing_cache_create_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "none" / "cache.sqlite")

    assert cache.stats().entries == 0
    assert cache.clear() == 0
    assert not (tmp_path / "none").exists()


def test_the_default_cache_lives_under_lmc_cache_dir(isolated_cache: Path) -> None:
    cache = ResponseCache()
    cache.put("model-a", REQUEST, RESPONSE)

    assert cache_dir() == isolated_cache
    assert cache.path.parent == isolated_cache
    assert cache.path.exists()


def test_the_cache_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    ResponseCache(path).put("model-a", REQUEST, RESPONSE)

    with sqlite3.connect(path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()

    assert mode == "wal"


# several processes -------------------------------------------------------------------------------

ENTRIES_PER_PROCESS = 200


def entry(worker: int, i: int) -> tuple[str, LMRequest, LMResponse]:
    return (
        f"model-{worker}",
        LMRequest(prompt=f"worker {worker} entry {i}"),
        LMResponse(text=f"reply {worker}/{i}", prompt_tokens=i, completion_tokens=worker),
    )


def write_and_read(worker: int, path: str, start: Barrier, results: Queue[str]) -> None:
    """Runs in its own process: write entries, reading each back (and a neighbour's)."""
    try:
        start.wait(timeout=30)  # every process opens the fresh file at the same moment
        cache = ResponseCache(Path(path))
        for i in range(ENTRIES_PER_PROCESS):
            model, request, response = entry(worker, i)
            cache.put(model, request, response)
            hit = cache.get(model, request)
            if hit is None or hit.text != response.text:
                raise AssertionError(f"worker {worker}: entry {i} read back as {hit}")
            cache.get(*entry((worker + 1) % 4, i)[:2])  # may or may not be there yet
        cache.close()
    except BaseException as error:
        start.abort()  # the others stop waiting for this one
        results.put(f"worker {worker}: {type(error).__name__}: {error}")
        raise
    results.put("ok")


def run_processes(
    target: Callable[[int, str, Barrier, Queue[str]], None], path: Path
) -> list[int | None]:
    """Four spawned processes, started together; each must report "ok"."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    results: Queue[str] = spawn.Queue()
    processes = [
        spawn.Process(target=target, args=(worker, str(path), start, results))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    outcomes = sorted(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert outcomes == ["ok"] * 4
    return [process.exitcode for process in processes]


def test_several_processes_write_and_read_one_cache_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    existing = ResponseCache(path)  # the file is there, as after any earlier run
    existing.put("seed", REQUEST, RESPONSE)
    existing.clear()
    existing.close()

    exit_codes = run_processes(write_and_read, path)

    assert exit_codes == [0] * 4
    cache = ResponseCache(path)
    assert cache.stats().entries == 4 * ENTRIES_PER_PROCESS
    for worker in range(4):
        for i in range(ENTRIES_PER_PROCESS):
            model, request, response = entry(worker, i)
            hit = cache.get(model, request)
            assert hit is not None, (worker, i)
            assert (hit.text, hit.prompt_tokens, hit.completion_tokens) == (
                response.text,
                response.prompt_tokens,
                response.completion_tokens,
            )


FRESH_FILES = 30


def open_fresh_files(worker: int, folder: str, start: Barrier, results: Queue[str]) -> None:
    """Runs in its own process: with the others, first use of one fresh cache file after another."""
    try:
        for round in range(FRESH_FILES):
            start.wait(timeout=30)
            cache = ResponseCache(Path(folder) / f"fresh-{round}.sqlite")
            model, request, response = entry(worker, round)
            cache.put(model, request, response)
            cache.close()
    except BaseException as error:
        start.abort()  # the others stop waiting for this one
        results.put(f"worker {worker}: {type(error).__name__}: {error}")
        raise
    results.put("ok")


def test_several_processes_can_start_on_a_fresh_cache_file_at_once(tmp_path: Path) -> None:
    exit_codes = run_processes(open_fresh_files, tmp_path)

    assert exit_codes == [0] * 4
    for round in range(FRESH_FILES):
        assert ResponseCache(tmp_path / f"fresh-{round}.sqlite").stats().entries == 4


# secrets -----------------------------------------------------------------------------------------


def test_a_hosted_model_identity_has_no_credentials() -> None:
    lm = HostedLM("openai/x", api_base="https://user:secret@host:8000/v1?key=abc")

    identity = lm.identity

    assert identity == "litellm:openai/x@https://host:8000/v1"
    for secret in ("secret", "abc", "user"):
        assert secret not in identity


def test_the_cache_file_never_holds_credentials_from_the_server_address(tmp_path: Path) -> None:
    lm = HostedLM(
        "openai/x", api_base="https://alice-login:s3cr3t-pass@host:8000/v1/?api_key=sk-live-0123"
    )
    cache = ResponseCache(tmp_path / "cache.sqlite")

    cache.put(lm.identity, REQUEST, RESPONSE)
    cache.close()

    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"litellm:openai/x@https://host:8000/v1" in stored
    for secret in (b"alice-login", b"s3cr3t-pass", b"sk-live-0123", b"api_key"):
        assert secret not in stored


# through the runtime -----------------------------------------------------------------------------


def test_a_second_run_is_answered_from_the_cache_without_an_lm_call() -> None:
    fake = FakeLM(lambda request: '{"answer": "Paris"}')
    program = lmc.loads(ONE_STEP)

    first = program.run({"question": "Capital of France?"}, lmc.context(fake, cache=True))
    calls = list(fake.requests)
    again = lmc.context(fake, cache=True)
    second = program.run({"question": "Capital of France?"}, again)

    assert len(calls) == 1
    assert fake.requests == calls
    assert second == first == lmc.Prediction(answer="Paris")
    stats = again.stats.steps["gen"]
    assert (stats.calls, stats.cache_hits) == (0, 1)


def test_another_model_identity_is_not_answered_from_the_cache() -> None:
    program = lmc.loads(ONE_STEP)
    first = FakeLM(lambda request: '{"answer": "from a"}', identity="model-a")
    second = FakeLM(lambda request: '{"answer": "from b"}', identity="model-b")

    program.run({"question": "q"}, lmc.context(first, cache=True))
    outputs = program.run({"question": "q"}, lmc.context(second, cache=True))

    assert outputs == lmc.Prediction(answer="from b")
    assert len(second.requests) == 1
