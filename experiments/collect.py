"""What an experiment reads back from Prometheus: one series per figure of the report, over the run.

Each series is a single line (aggregated over routes, replicas and workers), read with the lab's recording
rules wherever one exists, so the report shows the numbers the dashboard and the diagnosis saw.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lab.stack import Lab
from model_api.vocabulary import MODEL_ROUTES_REGEX, P999_MIN_SAMPLES, RULE_WINDOW_SECONDS, STEP_SECONDS

MODEL_ROUTES = f'route=~"{MODEL_ROUTES_REGEX}"'
WINDOW = f"[{RULE_WINDOW_SECONDS}s]"  # the recording rules' window, so these series read like theirs
SERVER_BUCKETS = f"sum by (le) (rate(lab_http_request_duration_seconds_bucket{{{MODEL_ROUTES}}}{WINDOW}))"
CLIENT_BUCKETS = f"sum by (le) (rate(locust_response_time_seconds_bucket{WINDOW}))"
SERVER_REQUESTS = f"sum(increase(lab_http_request_duration_seconds_count{{{MODEL_ROUTES}}}{WINDOW}))"
CLIENT_REQUESTS = f"sum(increase(locust_response_time_seconds_count{WINDOW}))"


def p999(buckets: str, requests: str) -> str:
    """PromQL: the P99.9 of a window that holds P999_MIN_SAMPLES requests or more, nothing where it holds fewer
    (as the recording rules, over both routes together like the P99 series beside it)."""
    return f"histogram_quantile(0.999, {buckets}) and on () {requests} >= {P999_MIN_SAMPLES}"


# name -> (PromQL, unit); every one is a single series.
SERIES: dict[str, tuple[str, str]] = {
    "users": ("max(locust_users)", "users"),
    "rps_client": ("sum(endpoint:locust_requests:rate30s)", "req/s"),
    "rps_server": (f"sum(route:lab_http_requests:rate30s{{{MODEL_ROUTES}}})", "req/s"),
    "p50_client": (f"histogram_quantile(0.50, {CLIENT_BUCKETS})", "s"),
    "p95_client": (f"histogram_quantile(0.95, {CLIENT_BUCKETS})", "s"),
    "p99_client": (f"histogram_quantile(0.99, {CLIENT_BUCKETS})", "s"),
    "p50_server": (f"histogram_quantile(0.50, {SERVER_BUCKETS})", "s"),
    "p95_server": (f"histogram_quantile(0.95, {SERVER_BUCKETS})", "s"),
    "p99_server": (f"histogram_quantile(0.99, {SERVER_BUCKETS})", "s"),
    "p999_client": (p999(CLIENT_BUCKETS, CLIENT_REQUESTS), "s"),
    "p999_server": (p999(SERVER_BUCKETS, SERVER_REQUESTS), "s"),
    "requests_client": (CLIENT_REQUESTS, "requests"),  # in each 30 s window: what a P99.9 is read from
    "requests_server": (SERVER_REQUESTS, "requests"),
    "failure_ratio": ("max(endpoint:locust_failures:ratio_rate30s)", "ratio"),
    "failures_client": (f"sum(rate(locust_failures_total{WINDOW}))", "req/s"),
    "cpu_utilization": ("max(instance:lab_cpu_utilization:ratio_rate30s)", "ratio"),
    "cpu_throttled": ("max(instance:lab_cpu_throttled_periods:ratio_rate30s)", "ratio"),
    "cpu_limit": ("max(lab_container_cpu_limit_cores)", "cores"),
    "worker_cpu": ("max(pid:lab_worker_cpu:rate30s)", "cores"),
    "memory_bytes": ("sum(lab_container_memory_usage_bytes)", "bytes"),
    "workers_rss_bytes": ("sum(lab_worker_resident_memory_bytes)", "bytes"),  # each worker's own models
    "in_flight": ("job:lab_requests_in_flight:sum", "requests"),
    "thread_capacity": ("sum(lab_threadpool_threads_capacity)", "threads"),
    "queueing_gap": ("max(route:lab_queueing_gap_seconds:p99_rate30s)", "s"),
    # Inside the worker: a request's mean wait before its handler runs (threadpool, event loop, CPU) and that
    # wait against its time being served. The queue of a thread pool forms here, not between client and server.
    "wait_before_handler": ("job:lab_request_wait_seconds:mean_rate30s", "s"),
    "wait_per_service": ("job:lab_request_wait_per_service:ratio_rate30s", "ratio"),
    "event_loop_lag": ("job:lab_event_loop_lag_seconds:max", "s"),
    "batch_size": (
        f"sum(rate(lab_batch_size_sum{WINDOW})) / (sum(rate(lab_batch_size_count{WINDOW})) > 0)",
        "requests",
    ),
    "locust_worker_cpu": ("max(locust_worker_cpu_percent)", "%"),
    # Cold start: the API's own 503s while its models load (only without the readiness gate), how long a worker
    # took from its start to ready, and the slowest first request a worker answered.
    "not_ready_rps": (f'sum(rate(lab_http_requests_total{{{MODEL_ROUTES},status="503"}}{WINDOW}))', "req/s"),
    "start_to_ready": ('max(lab_cold_start_seconds{phase="ready"})', "s"),
    "first_request": ("max(lab_first_request_seconds)", "s"),
    # Memory: the share of the limit, and the counters of what it cost (totals since the API started: a peak is
    # the run's total): processes the OOM killer took, workers gunicorn replaced, requests they held, and the
    # requests the balancer (compose) sent again after a worker died without answering them.
    "memory_utilization": ("max(instance:lab_memory_utilization:ratio)", "ratio"),
    "oom_kills": ("sum(lab_container_oom_kills_total)", "processes"),
    "worker_restarts": ("sum(lab_worker_restarts_total)", "workers"),
    "lost_requests": ("sum(lab_worker_lost_requests_total)", "requests"),
    "balancer_retries": ('sum(haproxy_backend_retry_warnings_total{proxy="api"})', "requests"),
    # The answer cache: the share of lookups it answered (the best cache kind, when several report).
    "cache_hit_ratio": ("max(cache:lab_cache_hits:ratio_rate30s)", "ratio"),
}


@dataclass
class RunSeries:
    """The run's figures over time: shared timestamps, one list per series (None where there was no value)."""

    timestamps: list[float]
    values: dict[str, list[float | None]]
    verdicts: list[str | None]
    units: dict[str, str] = field(default_factory=lambda: {name: unit for name, (_, unit) in SERIES.items()})

    def verdict_counts(self) -> dict[str, int]:
        return dict(Counter(v for v in self.verdicts if v).most_common())

    def to_json(self) -> dict[str, Any]:
        return {"timestamps": self.timestamps, "values": self.values, "verdicts": self.verdicts, "units": self.units}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSeries:
        return cls(data["timestamps"], data["values"], data["verdicts"], data["units"])


def _aligned(result: list[dict], timestamps: list[float]) -> list[float | None]:
    if not result:
        return [None] * len(timestamps)
    points = {round(float(t)): float(v) for t, v in result[0]["values"]}
    return [_finite(points.get(round(t))) for t in timestamps]


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value and abs(value) != float("inf") else None


def collect(lab: Lab, start: float, end: float, step: float = STEP_SECONDS) -> RunSeries:
    """Every series of SERIES and the verdict, from `start` to `end` (Unix seconds), one point per `step`."""
    first = round(start / step) * step
    timestamps = [first + i * step for i in range(int((end - first) // step) + 1)]
    values = {
        name: _aligned(lab.prometheus.query_between(expr, first, end, step), timestamps)
        for name, (expr, _) in SERIES.items()
    }
    verdicts: list[str | None] = [None] * len(timestamps)
    index = {round(t): i for i, t in enumerate(timestamps)}
    for series in lab.prometheus.query_between("job:lab_diagnosis:verdict", first, end, step):
        for t, _ in series["values"]:
            if round(float(t)) in index:
                verdicts[index[round(float(t))]] = series["metric"]["verdict"]
    return RunSeries(timestamps, values, verdicts)
