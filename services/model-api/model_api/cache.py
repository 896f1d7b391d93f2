"""The answer cache (LAB_CACHE): a request seen before is answered without the downstream wait and the model.

    key = the route and the validated body, as canonical JSON (sorted keys), hashed
    value = what the model answered (a probability, a price): the handler still turns it into a decision

- `local`: a bounded LRU in each worker. Free to ask, but each worker fills its own, so the more workers, the
  more often a repeated request lands on one that has not seen it yet.
- `redis`: one Redis that every worker and replica shares: one answer serves them all, at the price of a
  network round trip on every lookup.

The cache may make a request faster, never make it fail: every Redis call is bounded by LAB_REDIS_TIMEOUT_MS, a
failure or a timeout counts as an error and the request goes on to the model as if uncached, and after one the
cache pauses Redis for a moment, so that a dead Redis does not add its timeout to every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from model_api.metrics import ApiMetrics
from model_api.settings import Settings
from model_api.vocabulary import CACHE_RESULTS

log = logging.getLogger("model_api")

# After a Redis failure, lookups skip Redis this long (counted as errors, reason "paused"): a dead Redis costs
# one timeout a second per worker instead of one per request. Short, so a Redis that is back is used at once.
PAUSE_AFTER_FAILURE_S = 1.0
KEY_PREFIX = "lab:answer:"  # every key the lab writes in a shared Redis starts so
HIT, MISS, ERROR = CACHE_RESULTS
OPERATIONS = ("get", "set")
ERROR_REASONS = ("timeout", "failure", "paused")  # too slow, failed, not tried (paused after a failure)


def answer_key(route: str, fields: dict[str, Any], namespace: str = "") -> str:
    """The cache key of a request: the same for the same route and field values in any order, different when a
    value differs. `namespace` keeps apart answers that differ for the same request (another model runtime)."""
    canonical = json.dumps({"route": route, "fields": fields}, sort_keys=True, separators=(",", ":"))
    return f"{KEY_PREFIX}{namespace}:{hashlib.sha256(canonical.encode()).hexdigest()}"


class Store(Protocol):
    """Where answers are kept. A store raises on failure; AnswerCache turns that into a bypass."""

    async def get(self, key: str) -> float | None: ...

    async def set(self, key: str, value: float) -> None: ...

    async def close(self) -> None: ...


class LocalStore:
    """A least-recently-used dict of at most `size` answers, each valid for `ttl` seconds, in this worker."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size, self._ttl, self._clock = size, ttl, clock
        self._entries: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (expires at, value)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> float | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: float) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisStore:
    """Answers in a Redis shared by every worker and replica, each call bounded by `timeout` seconds."""

    def __init__(self, url: str, ttl: float, timeout: float) -> None:
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        # No retries: a retry would double the wait the timeout bounds. The socket timeouts end a stalled call
        # in redis-py itself; asyncio.timeout also bounds the wait for a connection from the pool.
        self._redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )

    async def get(self, key: str) -> float | None:
        async with asyncio.timeout(self._timeout):
            value = await self._redis.get(key)
        return None if value is None else float(value)

    async def set(self, key: str, value: float) -> None:
        async with asyncio.timeout(self._timeout):
            # repr: the shortest text that reads back as the same float, so a hit answers exactly what the model did
            await self._redis.set(key, repr(value), px=self._ttl_ms)

    async def close(self) -> None:
        await self._redis.aclose()


class AnswerCache:
    """Looks answers up and stores them, counting each lookup's result and timing each call; never raises."""

    def __init__(
        self, kind: str, store: Store, metrics: ApiMetrics | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kind = kind
        self._store, self._metrics, self._clock = store, metrics, clock
        self._paused_until = 0.0
        if metrics is not None:  # every series exposed at zero from the first scrape: a ratio of 0, not absent
            for result in CACHE_RESULTS:
                metrics.child(metrics.cache_lookups, kind, result)
            for operation in OPERATIONS:
                metrics.child(metrics.cache_latency, kind, operation)
                for reason in ERROR_REASONS:
                    metrics.child(metrics.cache_errors, kind, operation, reason)

    async def get(self, key: str) -> float | None:
        """The cached answer, or None: not cached, or the cache could not say (an error, counted)."""
        try:
            value = await self._call("get", self._store.get(key))
        except _Bypassed:
            self._count_lookup(ERROR)
            return None
        self._count_lookup(MISS if value is None else HIT)
        return value

    async def set(self, key: str, value: float) -> None:
        """Keep an answer; a failure is counted and otherwise ignored (the next lookup is a miss)."""
        with contextlib.suppress(_Bypassed):
            await self._call("set", self._store.set(key, value))

    async def close(self) -> None:
        await self._store.close()

    async def _call(self, operation: str, call: Any) -> Any:
        if self._clock() < self._paused_until:
            call.close()  # never awaited: the coroutine is dropped without touching Redis
            self._count_error(operation, "paused")
            raise _Bypassed
        started = time.perf_counter()
        try:
            return await call
        except Exception as error:  # any failure of the store: the request must not fail with it
            reason = "timeout" if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__ else "failure"
            self._count_error(operation, reason)
            if self._paused_until <= self._clock() - PAUSE_AFTER_FAILURE_S:  # log once per outage, not per request
                log.warning("%s cache %s failed (%s: %s): bypassing it", self.kind, operation, reason, error)
            self._paused_until = self._clock() + PAUSE_AFTER_FAILURE_S
            raise _Bypassed from error
        finally:
            if self._metrics is not None:
                self._metrics.child(self._metrics.cache_latency, self.kind, operation).observe(
                    time.perf_counter() - started
                )

    def _count_lookup(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.child(self._metrics.cache_lookups, self.kind, result).inc()

    def _count_error(self, operation: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.child(self._metrics.cache_errors, self.kind, operation, reason).inc()


class _Bypassed(Exception):
    """The store could not be used for this call; the caller goes on without it."""


def build_cache(settings: Settings, metrics: ApiMetrics | None) -> AnswerCache | None:
    """The cache LAB_CACHE asks for, or None when it is off."""
    if settings.cache == "local":
        return AnswerCache("local", LocalStore(settings.cache_size, settings.cache_ttl_s), metrics)
    if settings.cache == "redis":
        store = RedisStore(settings.redis_url, settings.cache_ttl_s, settings.redis_timeout_ms / 1000.0)
        return AnswerCache("redis", store, metrics)
    return None
