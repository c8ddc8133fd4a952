"""What running a program cost, step by step: LM calls, cache hits, repairs, tokens, latency."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lmc.backends.base import LMResponse


@dataclass
class StepStats:
    calls: int = 0
    cache_hits: int = 0
    repairs: int = 0
    failures: int = 0
    # Tokens of every reply, the cache's included: what the program's calls amount to.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    # Tokens of the calls the model answered (not the cache): the work it did.
    model_prompt_tokens: int = 0
    model_completion_tokens: int = 0
    # Of `model_prompt_tokens`, those the model reused from an earlier prompt's prefix instead
    # of evaluating them; counted over the calls whose model said so. The others are
    # `reuse_unknown` calls (a server that does not report it).
    reused_prompt_tokens: int = 0
    reuse_unknown: int = 0
    # Strings the model looped in, closed by the embedded model (a reply cut short there).
    loops_closed: int = 0

    @property
    def evaluated_prompt_tokens(self) -> int:
        """The prompt tokens the model read (evaluated): all it was sent but what it reused. An
        upper bound when some calls did not say what they reused."""
        return self.model_prompt_tokens - self.reused_prompt_tokens

    def add(self, other: StepStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunStats:
    """Counters shared by the calls of a run (or a dataset run); safe across threads."""

    steps: dict[str, StepStats] = field(default_factory=dict)
    retrievals: int = 0
    functions: int = 0
    function_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_call(self, step: str, response: LMResponse, *, repair: bool) -> None:
        with self._lock:
            stats = self.steps.setdefault(step, StepStats())
            if response.cached:
                stats.cache_hits += 1
            else:
                stats.calls += 1
                stats.latency_s += response.latency_s
                stats.model_prompt_tokens += response.prompt_tokens
                stats.model_completion_tokens += response.completion_tokens
                if response.reused_prompt_tokens is None:
                    stats.reuse_unknown += 1
                else:
                    stats.reused_prompt_tokens += response.reused_prompt_tokens
                stats.loops_closed += response.loops_closed
            stats.repairs += int(repair)
            stats.prompt_tokens += response.prompt_tokens
            stats.completion_tokens += response.completion_tokens

    def record_failure(self, step: str) -> None:
        with self._lock:
            self.steps.setdefault(step, StepStats()).failures += 1

    def record_function(self, step: str, seconds: float) -> None:
        with self._lock:
            self.functions += 1
            self.function_s += seconds

    def record_retrieval(self) -> None:
        with self._lock:
            self.retrievals += 1

    def merge(self, other: RunStats) -> None:
        """Add what another run counted (a cluster worker's, for its records) to these counts."""
        with self._lock:
            for step, stats in other.steps.items():
                self.steps.setdefault(step, StepStats()).add(stats)
            self.retrievals += other.retrievals
            self.functions += other.functions
            self.function_s += other.function_s

    def __getstate__(self) -> dict[str, object]:
        # Sent from a cluster's worker to the process that runs the job: the lock stays behind.
        with self._lock:
            state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def total(self) -> StepStats:
        total = StepStats()
        with self._lock:
            for stats in self.steps.values():
                total.add(stats)
        return total
