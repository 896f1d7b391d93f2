"""Row 5, the load generator: Locust's workers, their CPU and memory, and Locust's own view of the requests.

Every panel here is fed by the lab's Locust alone, so each says so in words when the load comes from elsewhere.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import ENDPOINT, NO_CLIENT, query, timeseries_panel

TITLE = "Load generator"


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "Locust workers",
            "Worker processes connected to the Locust master. Add them when one is above 90% CPU, during a "
            "test too: docker compose up -d --no-deps --no-recreate --scale locust-worker=N locust-worker.",
            [query("max(locust_workers)", "workers")],
            "short",
            width=6,
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Locust worker CPU",
            "CPU of each Locust worker (100% = one core; dashed line at 90%). Above 90% the load generator is "
            "the bottleneck: it sends late and times late, so no other number on this dashboard can be trusted.",
            [query("locust_worker_cpu_percent", "{{worker}}")],
            "percent",
            width=9,
            line_at=90,
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Locust worker memory",
            "Resident memory of each Locust worker. It grows with users (each holds a connection and a "
            "greenlet); a steady climb at constant users is a leak in a locustfile.",
            [query("locust_worker_memory_bytes", "{{worker}}")],
            "bytes",
            width=9,
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Client requests and failures per second, per endpoint",
            "What Locust sent and what failed, per endpoint. Failures include answers slower than the SLO, so "
            "they start before any error does.",
            [
                query(f"endpoint:locust_requests:rate30s{{{ENDPOINT}}}", "sent {{endpoint}}"),
                query(
                    f"sum by (endpoint) (rate(locust_failures_total{{{ENDPOINT}}}[$__rate_interval]))",
                    "failed {{endpoint}}",
                ),
            ],
            "reqps",
            width=12,
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Locust's own percentiles (last 10 s)",
            "P50/P95/P99 as the Locust UI shows them, over its last 10 s or so: the same numbers the learner sees "
            "in the browser, to check the dashboard against.",
            [query(f"locust_response_time_percentile_seconds{{{ENDPOINT}}}", "{{endpoint}} P{{quantile}}")],
            "s",
            width=12,
        ).no_value(NO_CLIENT),
    ]
