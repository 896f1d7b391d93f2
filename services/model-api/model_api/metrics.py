"""Every metric family the API exposes, defined in one place (the table in docs/metrics.md mirrors this module).

Request-path families are prometheus-client objects; under gunicorn they live in multiprocess files and
/metrics sums them across workers. Scrape-time families (workers, container, build) come from collectors in
`model_api.collectors` and are listed here too, so the docs check sees them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict

from model_api.buckets import BATCH_SIZE_BUCKETS, LAG_BUCKETS, LATENCY_BUCKETS, STAGE_BUCKETS

# Requests in flight: the master reads a dead worker's value of it (in_flight_when_dead).
IN_FLIGHT = "lab_http_requests_in_flight"

# Families produced at scrape time by model_api.collectors: name -> (type, labels, help).
SCRAPE_TIME_FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "lab_workers": ("gauge", (), "Live gunicorn workers serving the API."),
    "lab_worker_cpu_seconds_total": ("counter", ("pid",), "CPU time used by each gunicorn worker (psutil)."),
    "lab_worker_resident_memory_bytes": ("gauge", ("pid",), "Resident memory of each gunicorn worker (psutil)."),
    "lab_container_cpu_usage_seconds_total": (
        "counter",
        (),
        "CPU time used by the whole container (cgroup); without a CPU limit, by the API's own processes.",
    ),
    "lab_container_cpu_limit_cores": (
        "gauge",
        (),
        "CPU limit of the container in cores (cgroup quota / period); the cores the API may run on when unlimited.",
    ),
    "lab_container_cpu_periods_total": ("counter", (), "CFS scheduling periods that ran (cgroup)."),
    "lab_container_cpu_throttled_periods_total": ("counter", (), "CFS periods in which the quota ran out."),
    "lab_container_cpu_throttled_seconds_total": ("counter", (), "Time the container was throttled (cgroup)."),
    "lab_container_memory_usage_bytes": (
        "gauge",
        (),
        "Memory used by the whole container (cgroup working set: less the file cache the kernel can drop); "
        "without a memory limit, resident memory of the API's processes.",
    ),
    "lab_container_memory_limit_bytes": (
        "gauge",
        (),
        "Memory limit of the container; the host's memory when unlimited.",
    ),
    "lab_container_oom_kills_total": (
        "counter",
        (),
        "Processes the kernel's OOM killer killed in the container's memory cgroup (memory.events oom_kill in "
        "cgroup v2, memory.oom_control in v1); only under a memory limit.",
    ),
    "lab_slo_seconds": ("gauge", (), "The latency SLO (P99) the diagnosis judges by: LOCUST_SLO_MS, in seconds."),
    "lab_listen_queue_connections": (
        "gauge",
        (),
        "Connections the kernel has accepted on the API's listening socket that no worker has taken yet "
        "(the accept queue).",
    ),
    "lab_build_info": (
        "gauge",
        ("version", "sklearn_version", "model", "model_runtime", "handler_style", "batching"),
        "Always 1; the labels say what is running.",
    ),
}


class MetricSet:
    """prometheus-client objects held as attributes, listed for the docs check."""

    def metrics(self) -> list[MetricWrapperBase]:
        return [value for value in vars(self).values() if isinstance(value, MetricWrapperBase)]

    def families(self) -> Iterable[str]:
        """Names of the families this object defines, as they appear in /metrics."""
        for metric in self.metrics():
            name = metric._name  # prometheus-client keeps the name without the _total suffix
            yield f"{name}_total" if metric._type == "counter" else name


class ApiMetrics(MetricSet):
    """The request-path metrics of one API process.

    Pass a registry for a single process (tests, `uvicorn --factory`); pass None under gunicorn's
    multiprocess mode, where values go to files that the /metrics handler collects.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        # Children by label values, so the hot path skips prometheus-client's locked lookup (2 us each);
        # every label value used here is bounded (route templates, stages, methods, statuses).
        self._children: dict[tuple[str, tuple[str, ...]], MetricWrapperBase] = {}
        self.requests = Counter(
            "lab_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "lab_http_request_duration_seconds",
            "Time from receiving a request to sending its response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            IN_FLIGHT,
            "Requests received and not yet answered, by route template.",
            ["route"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.stage = Histogram(
            "lab_request_stage_duration_seconds",
            "Where a request's time goes: validation, cache (the answer cache's lookup and store), threadpool_wait, "
            "allocation, downstream, cpu_work, batch_queue, inference, cpu_wait (ready to compute but waiting for a "
            "CPU), serialization.",
            ["route", "stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "lab_batch_size",
            "Requests grouped into one model call by the micro-batcher.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "lab_event_loop_lag_seconds",
            "How late the event loop ran a probe scheduled at a fixed time, all workers together.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.worker_loop_lag = Gauge(
            "lab_worker_event_loop_lag_seconds",
            "The largest event-loop lag each worker saw in its last probe window.",
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.cold_start = Gauge(
            "lab_cold_start_seconds",
            "How long a worker's start took, by phase: fetch (the simulated model download), load (unpickling the "
            "models), warm_up (the warm-up predictions), ready (from the process start to ready); the slowest worker.",
            ["phase", "model_runtime"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.first_request = Gauge(
            "lab_first_request_seconds",
            "Latency of the first request a worker answered on each model route; the slowest worker's. Without a "
            "warm-up, it pays for what the first prediction loads.",
            ["route"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.threads_busy = Gauge(
            "lab_threadpool_threads_busy",
            "Threadpool threads running a sync handler, summed over live workers (sampled).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.threads_capacity = Gauge(
            "lab_threadpool_threads_capacity",
            "Threadpool size, summed over live workers.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.threads_waiting = Gauge(
            "lab_threadpool_tasks_waiting",
            "Requests waiting for a free threadpool thread, summed over live workers (sampled).",
            multiprocess_mode="livesum",
            registry=registry,
        )

        # The answer cache (LAB_CACHE), labelled by its kind: local or redis.
        self.cache_lookups = Counter(
            "lab_cache_lookups",
            "Answer-cache lookups, one per model request, by cache and result: hit (answered from the cache), miss "
            "(answered by the model, then stored), error (the cache could not say; answered by the model).",
            ["cache", "result"],
            registry=registry,
        )
        self.cache_errors = Counter(
            "lab_cache_errors",
            "Answer-cache calls that failed, by cache, operation (get, set) and reason: timeout (longer than "
            "LAB_REDIS_TIMEOUT_MS), failure (refused, reset...), paused (skipped for a moment after a failure).",
            ["cache", "operation", "reason"],
            registry=registry,
        )
        self.cache_latency = Histogram(
            "lab_cache_duration_seconds",
            "Time one answer-cache call took, by cache and operation (get, set), failed ones included.",
            ["cache", "operation"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )

    def child(self, metric: MetricWrapperBase, *labels: str) -> MetricWrapperBase:
        """`metric.labels(*labels)`, looked up once per combination."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


class SupervisorMetrics(MetricSet):
    """What the gunicorn master sees of its workers: the ones that died while it was serving, and the requests
    they took with them. Created in the master (gunicorn.conf.py), which then writes a multiprocess file of its
    own; the /metrics handler of any worker sums it with theirs."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.worker_restarts = Counter(
            "lab_worker_restarts",
            "Workers that died while the API was serving (the OOM killer, a crash, kill -9, a timeout, a recycle "
            "after LAB_MAX_REQUESTS) and that gunicorn replaced.",
            registry=registry,
        )
        self.lost_requests = Counter(
            "lab_worker_lost_requests",
            "Requests a worker had received and not yet answered when it died: each client got a connection error.",
            registry=registry,
        )


def in_flight_when_dead(pid: int, multiproc_dir: Path) -> int:
    """Requests in flight in a worker that has exited, read from its live-gauge file before the master removes it
    (prometheus_client's mark_process_dead): what that worker never answered."""
    path = multiproc_dir / f"gauge_livesum_{pid}.db"
    try:
        values = MmapedDict.read_all_values_from_file(str(path))
        return round(sum(value for key, value, *_ in values if json.loads(key)[0] == IN_FLIGHT))
    except (FileNotFoundError, RuntimeError):  # never served a request, or a torn file
        return 0


def all_family_names() -> list[str]:
    """Every family the API can expose, for the docs check."""
    return sorted(
        [
            *ApiMetrics(CollectorRegistry()).families(),
            *SupervisorMetrics(CollectorRegistry()).families(),
            *SCRAPE_TIME_FAMILIES,
        ]
    )
