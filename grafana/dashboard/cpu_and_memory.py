"""Row 3, CPU and memory: per worker and per container, against the container's limits."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import query, timeseries_panel

TITLE = "CPU and memory"


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "CPU per gunicorn worker",
            "CPU each API worker uses (100% = one core). One worker can use one core at most (the GIL): a "
            "CPU-bound API needs as many workers as its CPU limit has cores.",
            [query("pid:lab_worker_cpu:rate30s", "{{instance}} pid {{pid}}")],
            "percentunit",
        ),
        timeseries_panel(
            "Container CPU: used vs limit",
            "Cores the API's container uses, against its limit (cores). Usage cannot cross the limit: the "
            "kernel throttles the container instead, and the time it spends throttled is added latency.",
            [
                query(
                    "sum by (instance) (rate(lab_container_cpu_usage_seconds_total[$__rate_interval]))",
                    "used {{instance}}",
                ),
                query("max by (instance) (lab_container_cpu_limit_cores)", "limit {{instance}}"),
                query(
                    "sum by (instance) (rate(lab_container_cpu_throttled_seconds_total[$__rate_interval]))",
                    "throttled seconds per second {{instance}}",
                ),
            ],
            "suffix:cores",
        ),
        timeseries_panel(
            "API workers",
            "Live gunicorn workers per replica. A dip is a worker that died and was replaced; more workers is "
            "the more-workers scenario.",
            [query("sum by (instance) (lab_workers)", "workers {{instance}}")],
            "short",
        ),
        timeseries_panel(
            "Memory per worker",
            "Resident memory of each API worker. Every worker loads its own copy of the models, so memory grows "
            "with the number of workers: the price of scaling by processes.",
            [query("lab_worker_resident_memory_bytes", "{{instance}} pid {{pid}}")],
            "bytes",
        ),
        timeseries_panel(
            "Container memory vs limit",
            "Memory the API's container uses against its limit. Close to the limit, the kernel kills a worker "
            "(OOM) and gunicorn replaces it: watch API workers dip at the same moment.",
            [
                query("sum by (instance) (lab_container_memory_usage_bytes)", "used {{instance}}"),
                query("max by (instance) (lab_container_memory_limit_bytes)", "limit {{instance}}"),
            ],
            "bytes",
        ),
        timeseries_panel(
            "Memory utilization",
            "The container's memory as a share of its limit (dashed line at 90%).",
            [query("instance:lab_memory_utilization:ratio", "{{instance}}")],
            "percentunit",
            line_at=0.9,
        ),
        timeseries_panel(
            "Workers lost: OOM kills and restarts",
            "In each minute, the processes the kernel's OOM killer killed in the API's container (known only under "
            "a memory limit) and the workers gunicorn replaced (any death: OOM, crash, kill -9, or a recycle after "
            "LAB_MAX_REQUESTS). An OOM kill is the memory-bound verdict for the next 3 minutes.",
            [
                query("sum by (instance) (increase(lab_container_oom_kills_total[1m]))", "OOM kills {{instance}}"),
                query("sum by (instance) (increase(lab_worker_restarts_total[1m]))", "restarts {{instance}}"),
            ],
            "short",
            width=12,
        ),
        timeseries_panel(
            "Requests lost with their worker",
            "In each minute, the requests a worker held when it died: each client got a connection error. Against "
            "Locust's failures of every kind: when the two lines meet, every failure is a dead worker's, not a bug "
            "in the API.",
            [
                query("sum by (instance) (increase(lab_worker_lost_requests_total[1m]))", "lost {{instance}}"),
                query("sum(increase(locust_failures_total[1m]))", "Locust failures (every kind)"),
            ],
            "short",
            width=12,
        ),
    ]
