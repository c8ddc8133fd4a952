"""Dataset-run throughput on the Ray executor with 1, 2 and 4 workers, against a model of fixed
latency: an OpenAI-compatible stub on 127.0.0.1 that answers every call after 200 ms.

    .venv/bin/python bench/ray_scaling.py [--records 200] [--latency 0.2] [--concurrency 4]

The stub stands for a served model that is never the bottleneck (a model server per node, or a
hosted endpoint), so what is measured is how far the executor spreads the waiting: records per
second, each worker with `--concurrency` records in flight. Workers are started, and sent one
record each, before the clock starts; the local executor with the same records in flight as one
worker is the baseline. Ray starts here with 4 logical CPUs, whatever the machine has: the
workers mostly wait on the model. The answers are not cached (every record is a call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ray
from common import QA_PROGRAM as PROGRAM

import lmc
from lmc.runtime.executor import run_records
from lmc.runtime.ray_executor import RayExecutor


def slow_model(latency: float) -> ThreadingHTTPServer:
    """An OpenAI-compatible chat endpoint that answers `{"answer": "Paris"}` after `latency` s."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(latency)
            message = {"role": "assistant", "content": '{"answer": "Paris"}'}
            body = json.dumps(
                {
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 5},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timed_run(context: lmc.RunContext, records: list[dict[str, Any]]) -> float:
    """Seconds to run every record, results read in order as the CLI reads them."""
    program = lmc.loads(PROGRAM)

    async def drain() -> int:
        return len([r async for r in run_records(context, program.ir, records)])

    started = time.perf_counter()
    assert asyncio.run(drain()) == len(records)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per LM call")
    parser.add_argument("--concurrency", type=int, default=4, help="records in flight per worker")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()

    server = slow_model(args.latency)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    records = [{"question": f"question {i}"} for i in range(args.records)]
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)

    def context(executor: Any) -> lmc.RunContext:
        return lmc.context(
            "openai/stub", api_base=url, cache=False, concurrency=args.concurrency,
            executor=executor,
        )  # fmt: skip

    rows = [("local", 1, timed_run(context("local"), records), 0.0)]
    for workers in [int(w) for w in args.workers.split(",")]:
        executor = RayExecutor(workers=workers)
        started = time.perf_counter()
        timed_run(context(executor), [{"question": f"warm {i}"} for i in range(workers)])
        start_up = time.perf_counter() - started
        rows.append(("ray", workers, timed_run(context(executor), records), start_up))
        executor.close()
    ray.shutdown()
    server.shutdown()

    ideal = args.concurrency / args.latency
    print(
        f"{args.records} records, {args.latency * 1000:.0f} ms per LM call, "
        f"{args.concurrency} in flight per worker (one worker's ceiling: {ideal:.0f} records/s)"
    )
    print("| executor | workers | seconds | records/s | of ideal | start-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, workers, seconds, start_up in rows:
        rate = args.records / seconds
        print(
            f"| {name} | {workers} | {seconds:.2f} | {rate:.1f} | {rate / (ideal * workers):.0%} "
            f"| {start_up:.1f} |"
        )


if __name__ == "__main__":
    main()
