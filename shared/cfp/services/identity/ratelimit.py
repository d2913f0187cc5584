"""A small in-process sliding-window rate limiter.

Each process counts on its own: behind N instances an attacker gets N times the budget, which
the per-account limits keep small. (In Google Cloud, sign-in is Identity Platform's.)"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cfp.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` attempts in any `window` seconds."""

    count: int
    window: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    """An action's limits per account (email or principal) and per client address."""

    per_account: Limit
    per_address: Limit


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Attempts counted whether they succeed or not, so a limit also caps the password hashing
    an attacker can make the server do."""

    signin: RateLimit = RateLimit(Limit(10, 900), Limit(100, 900))
    mfa: RateLimit = RateLimit(Limit(10, 900), Limit(100, 900))
    forgot: RateLimit = RateLimit(Limit(3, 3600), Limit(20, 3600))
    reset: RateLimit = RateLimit(Limit(5, 3600), Limit(20, 3600))


class SlidingWindowLimiter:
    """Counts attempts per key over a sliding window; no I/O, safe on one event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._longest = 0.0

    def hit(self, action: str, checks: Sequence[tuple[str, str | None, Limit]]) -> None:
        """Count one attempt of `action` against each (dimension, key, limit) whose key is not
        None; RateLimited, counting nothing, if any of them is exhausted. `details.retry_after`
        (and the error's `retry_after`) is the whole seconds until an attempt is allowed."""
        now = self.clock()
        waits = []
        buckets = []
        for dimension, key, limit in checks:
            if key is None:
                continue
            bucket = self._hits.get((f"{action}:{dimension}", key))
            if bucket is not None:
                while bucket and bucket[0] <= now - limit.window:
                    bucket.popleft()
                if len(bucket) >= limit.count:
                    waits.append(bucket[len(bucket) - limit.count] + limit.window - now)
            buckets.append((f"{action}:{dimension}", key))
            self._longest = max(self._longest, limit.window)
        if waits:
            retry_after = max(1, math.ceil(max(waits)))
            error = RateLimited(
                f"too many attempts; try again in {retry_after} s",
                details={"retry_after": retry_after},
            )
            error.retry_after = retry_after  # type: ignore[attr-defined]
            raise error
        for name in buckets:
            self._hits.setdefault(name, deque()).append(now)
        if len(self._hits) > self.max_keys:
            self._evict(now)

    def _evict(self, now: float) -> None:
        """Forget keys with no recent attempt; if that is not enough, the oldest keys."""
        stale = [n for n, b in self._hits.items() if not b or b[-1] <= now - self._longest]
        for name in stale:
            del self._hits[name]
        while len(self._hits) > self.max_keys:
            del self._hits[next(iter(self._hits))]
