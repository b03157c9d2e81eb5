"""Token buckets: the per-user request-rate limit and the per-link byte-rate limit of downloads.

In-process state: with several server workers each enforces its own share (run one worker per link-serving
process, or put a shared limiter in front, to make the limits global).
"""

from __future__ import annotations

import math
import threading
import time

from models.errors import RateLimited


class TokenBucket:
    """`rate` tokens per second, holding at most `capacity`. Thread-safe."""

    def __init__(self, rate: float, capacity: float):
        self.rate, self.capacity = float(rate), float(capacity)
        self._tokens, self._stamp = float(capacity), time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self, amount: float) -> float:
        """Take `amount` tokens, going into debt if need be; returns the seconds to wait before using them.

        Concurrent callers queue up fairly: each one's debt pushes the next one's wait further out.
        """
        with self._lock:
            self._refill()
            self._tokens -= amount
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, amount: float = 1.0) -> float:
        """Take `amount` tokens if they are there (returns 0.0); otherwise take nothing and return the wait."""
        with self._lock:
            self._refill()
            if self._tokens >= amount:
                self._tokens -= amount
                return 0.0
            return (amount - self._tokens) / self.rate


class KeyedBuckets:
    """One bucket per key (a user, a link), made on first use with the rate and capacity given then."""

    def __init__(self):
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def get(self, key: str, rate: float, capacity: float) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or (bucket.rate, bucket.capacity) != (float(rate), float(capacity)):
                bucket = self._buckets[key] = TokenBucket(rate, capacity)
            return bucket


class RequestLimiter:
    """At most `per_minute` requests per key on average, with bursts of `burst`; `RateLimited` beyond."""

    def __init__(self, per_minute: float, burst: int):
        self.rate, self.burst = per_minute / 60.0, burst
        self._buckets = KeyedBuckets()

    def check(self, key: str, who: str) -> None:
        wait = self._buckets.get(key, self.rate, self.burst).try_take()
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(f"too many requests for {who}; retry in {retry_after} s", retry_after=retry_after)
