"""A Prometheus endpoint on the Locust master (port 9646): what the load generator sees and how hard it works.

Read from the master's statistics at scrape time, so it works headless and with the web UI alike. The
response-time histogram uses the API's own bucket boundaries (model_api.buckets), so the client P99 and the
server P99 can be compared bucket for bucket; the difference is time spent queueing before the app saw the
request. For that, every Locust process keeps its response times rounded up to a key in the same bucket as the
time itself (`response_time_key`), never down into a faster one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gevent.pywsgi import WSGIServer
from locust.runners import MasterRunner, WorkerRunner
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from locust import events, stats
from model_api.buckets import LATENCY_BUCKETS

CPU_SATURATED_PERCENT = 90.0  # Locust's own warning threshold: above it, the load generator is the bottleneck
RUNNER_STATES = ("ready", "spawning", "running", "cleanup", "stopping", "stopped", "missing")
QUANTILES = (0.5, 0.95, 0.99)


LATENCY_BOUNDS_MS = tuple(bound * 1000.0 for bound in LATENCY_BUCKETS)


def response_time_key(response_time_ms: float) -> float:
    """The key Locust stores a response time under: like Locust's own rounding (to about two significant digits,
    which keeps its statistics small), but upwards, and never past the next histogram bound. A response then
    counts in the same bucket on the client's side as its exact time would, so the client's histogram never
    reads faster than the API's (Locust's rounding to the nearest key put 1540 ms under 1.5 s). Locust's own
    percentiles read at most one rounding step high instead of half a step either way."""
    step = 1 if response_time_ms < 100 else 10 if response_time_ms < 1000 else 100 if response_time_ms < 10000 else 1000
    key = float(math.ceil(response_time_ms / step) * step)
    above = bisect.bisect_left(LATENCY_BOUNDS_MS, response_time_ms)  # the first bound >= the time
    if above < len(LATENCY_BOUNDS_MS):
        key = min(key, LATENCY_BOUNDS_MS[above])  # 1.5 and 7.5 ms are bounds between Locust's whole milliseconds
    return int(key) if key.is_integer() else key


def cumulative_buckets(
    response_times: Mapping[int, int], bounds_seconds: Sequence[float] = LATENCY_BUCKETS
) -> list[tuple[str, float]]:
    """Locust's response times (rounded milliseconds -> count) as Prometheus cumulative buckets, +Inf last."""
    ordered = sorted(response_times.items())
    buckets, counted, i = [], 0, 0
    for bound in bounds_seconds:
        while i < len(ordered) and ordered[i][0] <= bound * 1000.0:
            counted += ordered[i][1]
            i += 1
        buckets.append((floatToGoString(bound), counted))
    buckets.append(("+Inf", sum(response_times.values())))
    return buckets


def worker_nodes(runner: Any) -> list[Any]:
    """The workers the master hears from (missing ones excluded); none for a local runner."""
    if not isinstance(runner, MasterRunner):
        return []
    return [node for node in runner.clients.values() if node.state != "missing"]


class LocustCollector:
    """Converts the runner's state and statistics into metric families on each scrape."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        runner = self.environment.runner
        if runner is None:
            return
        yield GaugeMetricFamily("locust_users", "Users currently running.", value=runner.user_count)
        options = self.environment.parsed_options
        slo_ms = getattr(options, "slo_ms", None) if options is not None else None
        if slo_ms is not None:  # so that rules compare the client P99 with the SLO this run judges by
            yield GaugeMetricFamily("locust_slo_seconds", "The SLO: slower responses count as failures.", slo_ms / 1000)
        state = GaugeMetricFamily("locust_runner_state", "1 for the runner's current state.", labels=["state"])
        for name in RUNNER_STATES:
            state.add_metric([name], 1.0 if runner.state == name else 0.0)
        yield state
        yield from self._requests(runner.stats)
        yield from self._workers(runner)

    def _requests(self, stats: Any) -> Iterator[Metric]:
        labels = ["endpoint", "method"]
        requests = CounterMetricFamily("locust_requests", "Requests sent, by endpoint name.", labels=labels)
        failures = CounterMetricFamily(
            "locust_failures", "Requests failed (error, non-200 or slower than the SLO).", labels=labels
        )
        latency = HistogramMetricFamily(
            "locust_response_time_seconds", "Response time as the client measured it.", labels=labels
        )
        current = GaugeMetricFamily(
            "locust_response_time_percentile_seconds",
            "Response-time percentiles over about the last 10 s, as Locust's UI shows them.",
            labels=["endpoint", "quantile"],
        )
        for (name, method), entry in sorted(stats.entries.items()):
            requests.add_metric([name, method], entry.num_requests)
            failures.add_metric([name, method], entry.num_failures)
            latency.add_metric(
                [name, method], cumulative_buckets(entry.response_times), entry.total_response_time / 1000.0
            )
            if stats.use_response_times_cache:  # only the master and local runners keep the window
                for q in QUANTILES:
                    value = entry.get_current_response_time_percentile(q) or 0.0
                    current.add_metric([name, floatToGoString(q)], value / 1000.0)
        yield requests
        yield failures
        yield latency
        yield current

    def _workers(self, runner: Any) -> Iterator[Metric]:
        nodes = worker_nodes(runner)
        yield GaugeMetricFamily("locust_workers", "Locust worker processes connected to the master.", len(nodes))
        cpu = GaugeMetricFamily("locust_worker_cpu_percent", "CPU of each worker process (100 = one core).",
                                labels=["worker"])  # fmt: skip
        memory = GaugeMetricFamily("locust_worker_memory_bytes", "Resident memory of each worker.", labels=["worker"])
        for node in nodes:
            cpu.add_metric([node.id], node.cpu_usage)
            memory.add_metric([node.id], node.memory_usage)
        yield cpu
        yield memory
        busiest = max([node.cpu_usage for node in nodes] or [getattr(runner, "current_cpu_usage", 0.0)])
        yield GaugeMetricFamily(
            "locust_load_generator_saturated",
            "1 while a Locust process is above 90% CPU: the load generator, not the API, is then the bottleneck.",
            value=1.0 if busiest > CPU_SATURATED_PERCENT else 0.0,
        )


@events.init.add_listener
def _round_like_the_api(**_kwargs: Any) -> None:
    # Locust's documented way to change its bucketing: replace this module-level function, in every process
    # (workers store the keys, the master merges them).
    stats.bucket_response_time = response_time_key


@events.init.add_listener
def _serve(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or options is None or not options.exporter_port:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LocustCollector(environment))
    # The same interface as the web UI: 127.0.0.1 when `--web-host 127.0.0.1` (native runs), every interface
    # by default (in a container, where Prometheus reaches it over the lab's network).
    host = options.web_host if getattr(options, "web_host", "") not in ("", "*") else "0.0.0.0"
    server = WSGIServer((host, options.exporter_port), make_wsgi_app(registry), log=None)
    server.start()
    environment.lab_exporter = server
