"""The answer cache under gunicorn: Redis shared by every worker, a local cache per worker, and a Redis that dies or
hangs under load never failing a request.

Real gunicorn with 2 workers and Debian's redis-server, both on 127.0.0.1; payloads from the Locust catalog
(model_api.data), so that requests repeat; X-Worker-Pid says which worker answered each.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from lab.api import RunningApi, running_api
from lab.exposition import parse, total
from lab.load import RecordedLoad
from lab.polling import wait_for
from lab.redis import running_redis, start_redis
from model_api import data
from model_api.cache import ERROR_REASONS
from model_api.vocabulary import CACHE_RESULTS
from tests.support.tools import redis_server

pytestmark = pytest.mark.timeout(180)

WORKERS = 2
# Each miss waits this long in a sync handler: long enough that a hit (no wait) is plainly one, short enough for
# a few hundred requests a second from the clients below.
LATENCY_MS = "20"


@pytest.fixture(autouse=True)
def _redis_server_installed() -> None:
    redis_server()  # skips naming Debian's redis-server where it is missing (fails under LAB_REQUIRE_REDIS=1)


def lookups(api: RunningApi, result: str) -> float:
    return total(parse(api.metrics()), "lab_cache_lookups_total", result=result)


def errors(api: RunningApi, **labels: str) -> float:
    return total(parse(api.metrics()), "lab_cache_errors_total", **labels)


def post(url: str, applicant: dict[str, Any]) -> httpx2.Response:
    """One request on a new connection, so that consecutive requests spread over the workers."""
    response = httpx2.post(f"{url}/classify", json=applicant, timeout=30)
    response.raise_for_status()
    return response


def test_an_answer_one_worker_stored_in_redis_is_a_hit_for_the_other_and_the_same_answer(tmp_path, model_dir):
    catalog = [
        json.loads(k) for k in dict.fromkeys(json.dumps(p) for p in itertools.islice(data.applicants(1, 40, 0.0), 2000))
    ]
    with (
        running_redis(tmp_path / "redis") as redis,
        running_api(
            tmp_path, model_dir, workers=WORKERS, LAB_CACHE="redis", LAB_REDIS_URL=redis.url,
            LAB_DOWNSTREAM_LATENCY_MS=LATENCY_MS,
        ) as api,
    ):  # fmt: skip
        # First pass: each applicant once, answered by the model (a miss) in whichever worker took it.
        first = {i: post(api.url, applicant) for i, applicant in enumerate(catalog)}
        assert (lookups(api, "miss"), lookups(api, "hit")) == (len(catalog), 0)
        stored_by = {i: r.headers["x-worker-pid"] for i, r in first.items()}

        # Again, until some applicant has been answered by the worker that did not store its answer.
        crossed: list[tuple[int, httpx2.Response]] = []

        def another_worker_answered() -> bool:
            for i, applicant in enumerate(catalog):
                response = post(api.url, applicant)
                if response.headers["x-worker-pid"] != stored_by[i]:
                    crossed.append((i, response))
            return bool(crossed)

        wait_for(another_worker_answered, 60, "a worker to answer an applicant the other worker stored")
        misses, hits, failed = lookups(api, "miss"), lookups(api, "hit"), lookups(api, "error")

    print(f"\n{len(catalog)} applicants: {misses:.0f} misses, {hits:.0f} hits, {len(crossed)} across workers")
    assert len(set(stored_by.values())) == WORKERS, "the first pass did not reach both workers"
    assert misses == len(catalog), "a repeated applicant missed: the workers do not share the cache"
    assert hits >= len(catalog)
    assert failed == 0
    for i, response in crossed:
        assert response.json() == first[i].json(), "a hit answered differently from the model"


def test_a_local_cache_misses_each_applicant_once_per_worker_that_meets_it(tmp_path, model_dir):
    """Each worker keeps its own: a skewed catalog's hit ratio is high, and the misses are exactly the (worker,
    applicant) pairs met, which is why the ratio falls as workers grow."""
    draws = list(itertools.islice(data.applicants(3, 100, 1.0), 600))
    with running_api(tmp_path, model_dir, workers=WORKERS, LAB_CACHE="local") as api:
        met = set()
        with httpx2.Client(timeout=30) as client:
            for i, applicant in enumerate(draws):
                if i % 10 == 0:  # a new connection now and then, so that both workers take a share
                    client.close()
                    client = httpx2.Client(timeout=30)
                response = client.post(f"{api.url}/classify", json=applicant)
                response.raise_for_status()
                met.add((response.headers["x-worker-pid"], json.dumps(applicant, sort_keys=True)))
        misses, hits = lookups(api, "miss"), lookups(api, "hit")

    distinct = len({key for _, key in met})
    print(f"\n{len(draws)} draws of {distinct} applicants: {misses:.0f} misses, hit ratio {hits / len(draws):.2f}")
    assert misses == len(met)
    assert hits == len(draws) - len(met)
    assert hits / len(draws) > 0.6


def catalog_applicants(seed: int) -> Iterator[dict[str, Any]]:
    return data.applicants(seed, 50, 1.0)


def test_a_redis_that_dies_or_hangs_under_load_fails_no_request(tmp_path, model_dir):
    """Redis killed under load, started again, then stopped (SIGSTOP: connections accepted, nothing answered): every
    request is answered 200 throughout, the failures and the timeouts are counted, and the cache is used again
    once Redis is back."""
    redis = start_redis(tmp_path / "redis")
    port = redis.port
    try:
        wait_for(redis.ping, 30, "redis-server to answer")
        with running_api(
            tmp_path, model_dir, workers=WORKERS, LAB_CACHE="redis", LAB_REDIS_URL=redis.url,
            LAB_DOWNSTREAM_LATENCY_MS=LATENCY_MS, LAB_REDIS_TIMEOUT_MS="50",
        ) as api:  # fmt: skip
            load = RecordedLoad(api.url, 6, catalog_applicants).start()
            try:
                wait_for(lambda: lookups(api, "hit") >= 100, 60, "100 hits with Redis up")

                redis.kill()
                answered = len(load.outcomes)
                wait_for(lambda: errors(api, reason="failure") > 0, 30, "a failure counted with Redis dead")
                wait_for(lambda: len(load.outcomes) >= answered + 200, 60, "200 answers with Redis dead")
                assert errors(api, reason="paused") > 0, "a dead Redis was asked on every request"

                redis = start_redis(tmp_path / "redis", port)  # back, on the address the API knows
                wait_for(redis.ping, 30, "redis-server to answer again")
                hits = lookups(api, "hit")
                wait_for(lambda: lookups(api, "hit") >= hits + 100, 60, "100 more hits once Redis is back")

                redis.hang()
                answered = len(load.outcomes)
                wait_for(lambda: errors(api, reason="timeout") > 0, 30, "a timeout counted with Redis hung")
                wait_for(lambda: len(load.outcomes) >= answered + 200, 60, "200 answers with Redis hung")
                redis.resume()
            finally:
                outcomes = Counter(load.finish())
            scraped = parse(api.metrics())
    finally:
        redis.kill()

    looked_up = {result: total(scraped, "lab_cache_lookups_total", result=result) for result in CACHE_RESULTS}
    failed = {reason: total(scraped, "lab_cache_errors_total", reason=reason) for reason in ERROR_REASONS}
    print(f"\nRedis killed, restarted, hung: answers {dict(outcomes)}; lookups {looked_up}; errors {failed}")
    assert set(outcomes) == {"200"}, outcomes
    assert looked_up["error"] > 0
    assert all(failed[reason] > 0 for reason in ERROR_REASONS), failed
    assert total(scraped, "lab_http_requests_total", status="500") == 0


@dataclass(frozen=True)
class CacheRun:
    hit_ratio: float
    mean_get_seconds: float


def one_client_draws(url: str, draws: list[dict[str, Any]]) -> None:
    """One client, one request at a time (so no two workers miss the same applicant at once), on a new connection
    every 5 requests, so that every worker takes a share."""
    for start in range(0, len(draws), 5):
        with httpx2.Client(timeout=30) as client:
            for applicant in draws[start : start + 5]:
                client.post(f"{url}/classify", json=applicant).raise_for_status()


def cache_run(api: RunningApi, draws: list[dict[str, Any]]) -> CacheRun:
    one_client_draws(api.url, draws)
    samples = parse(api.metrics())
    hits = total(samples, "lab_cache_lookups_total", result="hit")
    seconds = total(samples, "lab_cache_duration_seconds_sum", operation="get")
    gets = total(samples, "lab_cache_duration_seconds_count", operation="get")
    return CacheRun(hits / len(draws), seconds / gets)


def test_the_local_caches_hit_ratio_falls_as_workers_grow_and_the_shared_ones_holds_for_a_network_hop(
    tmp_path, model_dir
):
    """The same 400 draws from the caching scenario's catalog (200 applicants, skew 1): a local cache in 1 worker,
    in 4, and Redis shared by 4. Each local copy misses every applicant it meets once; Redis misses each once for
    all four, exactly as one worker's local cache does, and pays a round trip on every lookup."""
    draws = list(itertools.islice(data.applicants(7, 200, 1.0), 400))
    runs: dict[str, CacheRun] = {}
    for name, workers, cache in (("local, 1 worker", 1, "local"), ("local, 4 workers", 4, "local")):
        with running_api(tmp_path / name, model_dir, workers=workers, LAB_CACHE=cache) as api:
            runs[name] = cache_run(api, draws)
    with (
        running_redis(tmp_path / "redis") as redis,
        running_api(tmp_path / "redis4", model_dir, workers=4, LAB_CACHE="redis", LAB_REDIS_URL=redis.url) as api,
    ):
        runs["redis, 4 workers"] = cache_run(api, draws)
    for name, run in runs.items():
        print(f"\n{name}: hit ratio {run.hit_ratio:.2f}, mean lookup {run.mean_get_seconds * 1e6:.0f} us")

    local1, local4, redis4 = runs.values()
    assert local4.hit_ratio < local1.hit_ratio - 0.05
    assert redis4.hit_ratio == local1.hit_ratio  # one miss per applicant, whichever worker meets it
    assert redis4.mean_get_seconds > local4.mean_get_seconds  # the network hop
