"""Row 6, the balancer (compose lab only): HAProxy's queue in front of the API, and each replica's share."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import query, timeseries_panel

TITLE = "Balancer: the queue in front of the API (compose lab)"


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "Balancer queue: requests waiting for a replica",
            "Requests the balancer (HAProxy, in front of the API) holds because every replica already has "
            "BALANCER_MAXCONN in flight. Above zero, the queue is in front of the API, where its own timing cannot "
            "see it: add replicas or make each request cheaper. Compose lab only.",
            [query("job:haproxy_backend_queue:sum", "waiting")],
            "short",
        ),
        timeseries_panel(
            "Balancer queue time",
            "How long requests waited in the balancer's queue for a replica (HAProxy's average over its last "
            "1024 requests). Over 100 ms, the diagnosis says queueing.",
            [query("job:haproxy_backend_queue_time_seconds:max", "average wait")],
            "s",
            line_at=0.1,
            line_color="orange",
        ),
        timeseries_panel(
            "Requests per replica (balancer)",
            "Answers per second from each API replica, as the balancer counts them (api1, api2... are its slots "
            "for the replicas it found). The balancer sends each request to the replica with the fewest in "
            "flight, so healthy replicas serve about the same.",
            [query("server:haproxy_server_http_responses:rate30s", "{{server}}")],
            "reqps",
        ),
        timeseries_panel(
            "In flight per replica (balancer)",
            "Requests each replica holds now, as the balancer sees them. A replica stuck at BALANCER_MAXCONN "
            "(100 by default) while others are not is slower than the rest.",
            [query("server:haproxy_server_sessions:current", "{{server}}")],
            "short",
            width=12,
        ),
        timeseries_panel(
            "Balancer errors",
            "Failed connections and broken answers per replica, and the 5xx the balancer answered (503: no "
            "replica up, or a queue timeout). A replica that restarts shows here before anywhere else.",
            [
                query("server:haproxy_server_errors:rate30s", "{{server}} errors"),
                query("job:haproxy_backend_http_responses_5xx:rate30s", "5xx answered"),
            ],
            "reqps",
            width=12,
        ),
    ]
