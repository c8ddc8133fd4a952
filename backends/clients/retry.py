"""When an LM call that failed for a passing reason is tried again, and how long lmc waits first.

Every try of a call that may succeed later (the server unreachable, no reply within the timeout,
408, 409, 429 and 5xx) is followed by another, up to `retries` more, after a wait: the server's
`Retry-After` when it sends one (never less), else exponential backoff with full jitter (a random
wait between 0 and `base_s * 2**(retry - 1)`, so that many clients that failed together do not
come back together). No single wait is longer than `max_wait_s`, and no retry starts after
`total_s` since the first try; a server that asks for a longer wait is not retried at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

DEFAULT_RETRIES = 5  # six tries: waits of about 1, 2, 4, 8 and 16 s at most, 31 s in all
DEFAULT_TIMEOUT_S = 120.0  # per try: a long reply from a model served on a CPU takes a while

# HTTP statuses worth another try: the request timed out or conflicted, the server is busy or
# failing (every 5xx). Any other 4xx says the request itself is wrong, and would be again.
RETRIED_STATUSES = frozenset({408, 409, 429})


def retried_status(status: int) -> bool:
    return status in RETRIED_STATUSES or 500 <= status <= 599


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each retry; `sleep`, `clock` and `random` are injectable, so
    that tests need not wait."""

    base_s: float = 1.0
    max_wait_s: float = 60.0
    total_s: float = 600.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = random.random

    def delay(self, retry: int, retry_after: float | None, elapsed_s: float) -> float | None:
        """Seconds to wait before retry number `retry` (1 for the first), given the server's
        `Retry-After` and the time since the first try began; None when lmc should stop."""
        if retry_after is not None:
            if retry_after > self.max_wait_s:
                return None
            # At least what the server asked for, plus a little jitter of lmc's own.
            wait = min(self.max_wait_s, retry_after + self.random() * self.base_s)
        else:
            wait = self.random() * min(self.max_wait_s, self.base_s * 2 ** (retry - 1))
        if elapsed_s + wait > self.total_s:
            return None
        return wait


DEFAULT_BACKOFF = Backoff()


def retry_after_seconds(headers: object, now: float | None = None) -> float | None:
    """The wait a reply's headers ask for: `retry-after-ms`, or `Retry-After` in seconds or as
    an HTTP date; None without one (or one that does not parse)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    milliseconds = get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except (TypeError, ValueError):
            pass
    value = get("retry-after")
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN: no wait asked


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, whitespace runs collapsed, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
