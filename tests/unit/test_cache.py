"""The answer cache: its key, the local LRU, and a store that fails or hangs never failing a request."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lab.exposition import parse, total
from model_api import data
from model_api.cache import PAUSE_AFTER_FAILURE_S, AnswerCache, LocalStore, RedisStore, answer_key
from model_api.metrics import ApiMetrics

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's client is asyncio code, as uvicorn's event loop is


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FailingStore:
    """A store whose every call raises, as redis-py does when Redis is down; it counts the calls it got."""

    def __init__(self) -> None:
        self.calls = 0

    async def get(self, key: str) -> float | None:
        self.calls += 1
        raise ConnectionError("Connection refused")

    async def set(self, key: str, value: float) -> None:
        self.calls += 1
        raise ConnectionError("Connection refused")

    async def close(self) -> None:
        pass


def counts(registry: CollectorRegistry, family: str, **labels: str) -> float:
    return total(parse(generate_latest(registry).decode()), family, **labels)


async def test_the_key_ignores_field_order():
    reordered = dict(reversed(list(data.COURSE_APPLICANT.items())))

    assert list(reordered) != list(data.COURSE_APPLICANT)
    assert answer_key("/classify", reordered) == answer_key("/classify", data.COURSE_APPLICANT)


async def test_the_key_differs_when_a_value_the_route_or_the_namespace_differs():
    key = answer_key("/classify", data.COURSE_APPLICANT, "sklearn")
    older = {**data.COURSE_APPLICANT, "age": data.COURSE_APPLICANT["age"] + 1}

    assert answer_key("/classify", older, "sklearn") != key
    assert answer_key("/predict", data.COURSE_APPLICANT, "sklearn") != key
    assert answer_key("/classify", data.COURSE_APPLICANT, "onnx") != key


async def test_the_local_store_keeps_at_most_its_size_and_drops_the_least_recently_used():
    store = LocalStore(size=2, ttl=60)
    await store.set("a", 1.0)
    await store.set("b", 2.0)
    assert await store.get("a") == 1.0  # a is now the most recently used

    await store.set("c", 3.0)

    assert len(store) == 2
    assert await store.get("b") is None
    assert (await store.get("a"), await store.get("c")) == (1.0, 3.0)


async def test_a_local_answer_expires_after_its_ttl():
    clock = Clock()
    store = LocalStore(size=10, ttl=5, clock=clock)
    await store.set("a", 1.0)

    clock.now += 4.9
    assert await store.get("a") == 1.0
    clock.now += 0.2
    assert await store.get("a") is None
    assert len(store) == 0


async def test_lookups_are_counted_as_misses_then_hits():
    registry = CollectorRegistry()
    cache = AnswerCache("local", LocalStore(10, 60), ApiMetrics(registry))

    assert await cache.get("k") is None
    await cache.set("k", 0.25)
    assert await cache.get("k") == 0.25

    assert counts(registry, "lab_cache_lookups_total", cache="local", result="miss") == 1
    assert counts(registry, "lab_cache_lookups_total", cache="local", result="hit") == 1
    assert counts(registry, "lab_cache_lookups_total", cache="local", result="error") == 0
    assert counts(registry, "lab_cache_duration_seconds_count", cache="local", operation="get") == 2


async def test_a_failing_store_is_bypassed_counted_and_then_paused_for_a_moment():
    registry, clock, store = CollectorRegistry(), Clock(), FailingStore()
    cache = AnswerCache("redis", store, ApiMetrics(registry), clock=clock)

    assert await cache.get("k") is None  # the failure: no exception, the request goes on to the model
    await cache.set("k", 0.5)  # within the pause: Redis is not even asked
    assert await cache.get("k") is None
    assert store.calls == 1
    clock.now += PAUSE_AFTER_FAILURE_S
    assert await cache.get("k") is None  # the pause is over: Redis is asked again
    assert store.calls == 2

    assert counts(registry, "lab_cache_lookups_total", cache="redis", result="error") == 3
    assert counts(registry, "lab_cache_errors_total", cache="redis", operation="get", reason="failure") == 2
    assert counts(registry, "lab_cache_errors_total", cache="redis", reason="paused") == 2


async def test_a_redis_that_never_answers_costs_one_timeout_not_a_failed_request():
    """A server that accepts connections and never replies, as a stopped (SIGSTOP) Redis does."""
    connections: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    registry = CollectorRegistry()
    cache = AnswerCache("redis", RedisStore(f"redis://127.0.0.1:{port}/0", ttl=60, timeout=0.05), ApiMetrics(registry))
    try:
        started = time.perf_counter()
        assert await cache.get("k") is None
        took = time.perf_counter() - started
    finally:
        await cache.close()
        server.close()
        for writer in connections:
            writer.close()

    assert 0.04 < took < 0.5
    assert counts(registry, "lab_cache_errors_total", cache="redis", operation="get", reason="timeout") == 1
    assert counts(registry, "lab_cache_lookups_total", cache="redis", result="error") == 1


async def test_a_redis_that_is_not_there_fails_fast_and_is_counted():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is free again: connections to it are refused
    registry = CollectorRegistry()
    cache = AnswerCache("redis", RedisStore(f"redis://127.0.0.1:{port}/0", ttl=60, timeout=0.05), ApiMetrics(registry))
    try:
        assert await cache.get("k") is None
    finally:
        await cache.close()

    assert counts(registry, "lab_cache_errors_total", cache="redis", operation="get", reason="failure") == 1


def test_a_repeated_request_is_answered_from_the_local_cache_with_the_models_answer(make_client):
    uncached = make_client().post("/classify", json=data.COURSE_APPLICANT).json()
    client = make_client(cache="local", downstream_latency_ms=200)

    first = client.post("/classify", json=data.COURSE_APPLICANT)
    started = time.perf_counter()
    again = client.post("/classify", json=dict(reversed(list(data.COURSE_APPLICANT.items()))))
    took = time.perf_counter() - started

    assert first.json() == again.json() == uncached
    assert took < 0.2, "the hit waited for the downstream call"
    samples = parse(client.get("/metrics").text)
    assert total(samples, "lab_cache_lookups_total", cache="local", result="miss") == 1
    assert total(samples, "lab_cache_lookups_total", cache="local", result="hit") == 1
    assert total(samples, "lab_request_stage_duration_seconds_count", route="/classify", stage="cache") == 2
    assert total(samples, "lab_request_stage_duration_seconds_count", route="/classify", stage="downstream") == 1
    assert client.get("/readyz").json()["cache"] == "local"


def test_without_a_cache_nothing_is_looked_up(client):
    client.post("/classify", json=data.COURSE_APPLICANT)

    samples = parse(client.get("/metrics").text)
    assert total(samples, "lab_cache_lookups_total") == 0
    assert total(samples, "lab_request_stage_duration_seconds_count", stage="cache") == 0
