"""The exporter's conversion of Locust's statistics into Prometheus families."""

from __future__ import annotations

import bisect
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from locust.stats import RequestStats
from prometheus_client import CollectorRegistry, generate_latest

from lab.exposition import parse, total
from lab_locust.exporter import (
    LATENCY_BOUNDS_MS,
    LocustCollector,
    _round_like_the_api,
    cumulative_buckets,
    response_time_key,
)
from locust import stats as locust_stats
from model_api.buckets import LATENCY_BUCKETS


def test_rounded_milliseconds_become_cumulative_buckets_in_seconds():
    buckets = dict(cumulative_buckets({1: 3, 2: 1, 8: 2, 250: 4, 12000: 1}))

    assert buckets["0.001"] == 3
    assert buckets["0.002"] == 4
    assert buckets["0.0075"] == 4
    assert buckets["0.01"] == 6
    assert buckets["0.3"] == 10
    assert buckets["10.0"] == 10
    assert buckets["+Inf"] == 11  # slower than the largest bucket
    assert len(buckets) == len(LATENCY_BUCKETS) + 1


def bucket(ms: float) -> int:
    """Which of the lab's latency buckets a time in milliseconds falls in (le is inclusive)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, ms)


@given(st.floats(min_value=0, max_value=60_000, allow_nan=False))
def test_a_response_time_is_kept_rounded_up_within_its_own_bucket(ms):
    key = response_time_key(ms)
    assert key >= ms  # never faster than measured
    assert bucket(key) == bucket(ms)  # so the client's histogram counts it where the server's counts it
    step = 1 if ms < 100 else 10 if ms < 1000 else 100 if ms < 10000 else 1000
    assert key - ms <= step  # as coarse as Locust's own rounding, no coarser


def test_locusts_rounding_to_the_nearest_key_would_count_a_response_in_a_faster_bucket():
    # Why the lab replaces it: 1540 ms is over 1.5 s, yet Locust stores it as 1500.
    assert bucket(locust_stats.bucket_response_time(1540)) < bucket(1540) == bucket(response_time_key(1540))


def test_every_locust_process_stores_response_times_under_the_labs_keys(monkeypatch):
    monkeypatch.setattr(locust_stats, "bucket_response_time", locust_stats.bucket_response_time)
    _round_like_the_api()
    stats = RequestStats()
    for ms in (1540, 1.2, 151):
        stats.log_request("POST", "/classify", ms, 10)
    assert dict(stats.get("/classify", "POST").response_times) == {1600: 1, 1.5: 1, 160: 1}
    buckets = dict(cumulative_buckets(stats.get("/classify", "POST").response_times))
    assert (buckets["0.0015"], buckets["0.15"], buckets["0.2"], buckets["1.5"], buckets["2.0"]) == (1, 1, 2, 2, 3)


def test_no_requests_give_empty_buckets():
    assert {count for _, count in cumulative_buckets({})} == {0}


def make_environment(runner_class_name: str = "LocalRunner") -> SimpleNamespace:
    stats = RequestStats(use_response_times_cache=True)
    for ms in (5, 5, 40, 300):
        stats.log_request("POST", "/classify", ms, 100)
    stats.log_error("POST", "/classify", RuntimeError("slower than the SLO"))
    stats.log_request("POST", "/predict", 3, 20)
    runner = SimpleNamespace(stats=stats, user_count=7, state="running", current_cpu_usage=95.0)
    return SimpleNamespace(runner=runner, parsed_options=SimpleNamespace(slo_ms=250.0))


def scrape(environment) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LocustCollector(environment))
    return parse(generate_latest(registry).decode())


def test_requests_and_failures_are_counters_by_endpoint_equal_to_locusts_totals():
    environment = make_environment()
    samples = scrape(environment)

    assert total(samples, "locust_requests_total", endpoint="/classify") == 4
    assert total(samples, "locust_failures_total", endpoint="/classify") == 1
    assert total(samples, "locust_requests_total") == environment.runner.stats.total.num_requests


def test_the_histogram_counts_every_request_and_sums_their_time():
    samples = scrape(make_environment())

    assert total(samples, "locust_response_time_seconds_count", endpoint="/classify") == 4
    assert total(samples, "locust_response_time_seconds_sum", endpoint="/classify") == 0.35
    assert total(samples, "locust_response_time_seconds_bucket", endpoint="/classify", le="0.005") == 2


def test_users_state_and_a_saturated_local_runner():
    samples = scrape(make_environment())

    assert samples[("locust_users", ())] == 7
    assert samples[("locust_slo_seconds", ())] == 0.25
    assert samples[("locust_runner_state", (("state", "running"),))] == 1
    assert samples[("locust_runner_state", (("state", "stopped"),))] == 0
    assert samples[("locust_workers", ())] == 0
    assert samples[("locust_load_generator_saturated", ())] == 1  # 95% CPU in the one process
