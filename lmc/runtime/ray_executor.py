"""The Ray executor: a dataset's records spread over worker processes of a Ray cluster.

Each worker is a Ray actor holding a `lmc.runtime.worker.Worker`: it makes its own LM client from
the job's model string (an embedded model per worker, or a served endpoint they share) and reads
and writes the same on-disk cache, and it is sent the program as `.lmp` text. The job keeps a
window of records in flight (workers times `--concurrency`), reads the next record only when one
goes out, and hands results on in input order, so memory stays flat however long the dataset is.
A worker that dies has its records sent to a fresh one; a result is handed on once, when the
record at the head of the window is done, so none is lost or given twice. LM calls spend from the
job's budget through a small actor that holds it while the records run.

Ray is imported only here, and only when a run starts: `import lmc` never loads it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import re
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from lmc.errors import InputError, RunError
from lmc.ir.graph import ProgramGraph
from lmc.runtime.context import Budget, BudgetExhausted, RunContext
from lmc.runtime.executor import RecordResult
from lmc.runtime.worker import RecordOutcome, Worker, WorkerSpec, program_text

# A record whose workers keep dying is what kills them (a crash in its own function, say): after
# this many, the run stops instead of taking down every worker in turn.
DEATHS_PER_RECORD = 3
# How long joining a cluster may take to open a connection to its head. Ray itself retries an
# address nobody answers at for minutes, writing warnings all the while.
CONNECT_SECONDS = 10
# `auto`, `local`, HOST:PORT or ray://HOST:PORT (what `ray.init(address=...)` accepts).
_ADDRESS = re.compile(
    r"(auto|local|(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5})"
)


class RayMissing(InputError):
    """`--executor ray` where Ray is not installed."""


class RayAddressInvalid(InputError):
    """A `--ray-address` that is not one Ray could connect to."""


class ClusterUnreachable(RunError):
    """Ray could not start, or the cluster at the address could not be joined."""


class WorkersLost(RunError):
    """A record's workers died under it, one after another."""


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def ray_module() -> Any:
    """Ray itself; an `Any` boundary, since Ray's own types are partial."""
    import ray

    return ray


class RayExecutor:
    """Records run on `workers` actors (default: one per CPU of the cluster) of the Ray cluster
    at `address` (default: the one this process is connected to, else `$RAY_ADDRESS`, else a
    new one on this machine), each with `context.concurrency` records in flight."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if not ray_installed():
            raise RayMissing("the ray executor needs Ray: pip install 'lmc[ray]'")
        if address is not None and not _ADDRESS.fullmatch(address):
            raise RayAddressInvalid(
                f"--ray-address '{address}': expected auto, HOST:PORT or ray://HOST:PORT"
            )
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be at least 1, not {workers}")
        self.address = address
        self.workers = workers
        self._pools: dict[WorkerSpec, _Pool] = {}
        self._started_ray = False

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        if self._started_ray:
            ray_module().shutdown()
            self._started_ray = False

    async def run_records(
        self,
        context: RunContext,
        graph: ProgramGraph,
        records: Iterable[dict[str, Any]],
        numbers: Iterable[int] | None,
    ) -> AsyncIterator[RecordResult]:
        pool = self._pool(WorkerSpec.of(context))
        ray = ray_module()
        program = ray.put(program_text(graph))
        budget = _LentBudget.lend(context.budget)
        indexes = itertools.count() if numbers is None else iter(numbers)
        source = zip(indexes, records, strict=False)
        window: deque[_InFlight] = deque()
        size = len(pool.slots) * max(1, context.concurrency)
        try:
            for index, inputs in itertools.islice(source, size):
                window.append(pool.submit(_InFlight(index, inputs), program, budget))
            while window:
                head = window[0]
                try:
                    outcome: RecordOutcome = await head.reference
                except ray.exceptions.RayActorError as died:
                    pool.resubmit_lost(head.slot, window, program, budget, died)
                    continue
                window.popleft()
                head.slot.load -= 1
                yield outcome.replay(context)
                for index, inputs in itertools.islice(source, 1):
                    window.append(pool.submit(_InFlight(index, inputs), program, budget))
        finally:
            # Stopped early (an error, --max-errors, the budget): the records in flight are not
            # wanted. Those still queued are dropped; one a worker has started runs to its end,
            # unread, and spends no more once the budget is settled.
            pool.drop(window)
            if budget is not None and context.budget is not None:
                budget.settle(context.budget)

    def _pool(self, spec: WorkerSpec) -> _Pool:
        if spec not in self._pools:
            self._connect()
            cpus = int(ray_module().cluster_resources().get("CPU", 1))
            self._pools[spec] = _Pool(spec, self.workers or max(1, cpus))
        return self._pools[spec]

    def _connect(self) -> None:
        ray = ray_module()
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address in (None, "local"):
            options["include_dashboard"] = False
        else:
            _check_reachable(self.address)
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            where = f"the Ray cluster at {self.address}" if self.address else "Ray"
            raise ClusterUnreachable(f"cannot start or join {where}: {error}") from None
        self._started_ray = True


def _check_reachable(address: str) -> None:
    """A cluster's head answers at `address` (HOST:PORT or ray://HOST:PORT), or
    `ClusterUnreachable`; `auto` is left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterUnreachable(
            f"cannot reach the Ray cluster at {address}: {reason} (is `ray start --head` "
            "running there?)"
        ) from None


@dataclass(eq=False)
class _Slot:
    """A place in the pool: a worker actor, and how many records it has in flight."""

    actor: Any
    load: int = 0


@dataclass(eq=False)
class _InFlight:
    index: int
    inputs: dict[str, Any]
    slot: _Slot = field(init=False)
    reference: Any = field(init=False)  # the ObjectRef of its RecordOutcome
    deaths: int = 0  # workers that died while it ran on them


class _Pool:
    """The worker actors of one worker spec; a dead one is replaced by a fresh one."""

    def __init__(self, spec: WorkerSpec, size: int) -> None:
        ray = ray_module()
        # Spread over the cluster's nodes; an actor needs a CPU to be placed, none to run (its
        # work is mostly waiting on the model), so more workers than CPUs is allowed.
        self._kind = ray.remote(Worker).options(
            max_concurrency=max(1, spec.concurrency), scheduling_strategy="SPREAD", max_restarts=0
        )
        self.spec = spec
        self.slots = [self._started() for _ in range(size)]

    def _started(self) -> _Slot:
        return _Slot(self._kind.remote(self.spec))

    def submit(self, record: _InFlight, program: Any, budget: _LentBudget | None) -> _InFlight:
        slot = min(self.slots, key=lambda s: s.load)
        slot.load += 1
        record.slot = slot
        record.reference = slot.actor.run.remote(program, record.index, record.inputs, budget)
        return record

    def resubmit_lost(
        self,
        dead: _Slot,
        window: Iterable[_InFlight],
        program: Any,
        budget: _LentBudget | None,
        died: Exception,
    ) -> None:
        """`dead`'s worker died: a fresh one takes its place, and every record that was on it
        runs again, on whichever worker has the fewest in flight."""
        if dead in self.slots:
            self.slots[self.slots.index(dead)] = self._started()
            # Ray may also say so of a worker it merely lost touch with: that one must not go on
            # running records nobody will read.
            ray_module().kill(dead.actor)
        for record in window:
            if record.slot is dead:
                record.deaths += 1
                if record.deaths >= DEATHS_PER_RECORD:
                    raise WorkersLost(
                        f"record {record.index + 1}: {record.deaths} workers died running it; "
                        f"the last: {_first_line(died)}"
                    )
                self.submit(record, program, budget)

    def drop(self, window: Iterable[_InFlight]) -> None:
        ray = ray_module()
        for record in window:
            record.slot.load -= 1
            with contextlib.suppress(Exception):  # done or dead already: nothing to cancel
                ray.cancel(record.reference)

    def close(self) -> None:
        ray = ray_module()
        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots.clear()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class _BudgetKeeper:
    """The actor that holds a budget while a cluster spends it: one call at a time."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def spend(self) -> bool:
        if self.limit is not None and self.used >= self.limit:
            return False
        self.used += 1
        return True

    def spent(self) -> int:
        return self.used


class _LentBudget:
    """What workers spend from: the rest of the job's budget, held by a `_BudgetKeeper`."""

    def __init__(self, keeper: Any, limit: int) -> None:
        self.keeper = keeper
        self.limit = limit

    @classmethod
    def lend(cls, budget: Budget | None) -> _LentBudget | None:
        if budget is None or budget.limit is None:
            return None
        ray = ray_module()
        keeper = ray.remote(_BudgetKeeper).remote(budget.left)
        return cls(keeper, budget.limit)

    def spend(self) -> None:
        if not ray_module().get(self.keeper.spend.remote()):
            raise BudgetExhausted(f"the budget of {self.limit} LM calls is spent")

    def settle(self, budget: Budget) -> None:
        """Count what the workers spent against the job's own budget, and let the keeper go."""
        ray = ray_module()
        budget.count(ray.get(self.keeper.spent.remote()))
        ray.kill(self.keeper)
