"""The "Model serving lab" dashboard, written as code: `python -m grafana.dashboard` writes dashboards/lab.json.

Grafana reads the JSON; this module is where it is edited, so that every panel gets the same datasource, a
description and a unit, and the layout cannot overlap (panels flow left to right, row by row). A test checks
that the committed JSON is what this module writes, and another runs every query against a live Prometheus.

Panels read the recording rules (prometheus/rules/recording.yml) wherever one exists, so the dashboard and the
diagnosis see the same numbers; raw series with `$__rate_interval` only where no rule fits (heatmap, stages).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_api.vocabulary import MODEL_ROUTES_REGEX, STEP_SECONDS, VERDICTS

HERE = Path(__file__).parent
DASHBOARD_FILE = HERE / "dashboards" / "lab.json"
DATASOURCE_UID = "prometheus"  # provisioning/datasources/prometheus.yaml gives the datasource this uid
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24

ROUTE = 'route=~"$route"'
ENDPOINT = 'endpoint=~"$endpoint"'
# What a panel fed only by the lab's Locust shows when the load comes from elsewhere (wrk, k6, a notebook, a
# locustfile run without the lab's exporter): unavailable, said in words, never an empty graph or a zero.
RATIO_ON_THE_RIGHT = {"unit": "none", "custom.axisPlacement": "right"}
NO_CLIENT = {"noValue": "no client-side data: the load is not coming from the lab's Locust"}


@dataclass
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    format: str = "time_series"


@dataclass
class Panel:
    """One panel: what it shows (queries), what to look for (description), its unit and its size."""

    kind: str
    title: str
    description: str
    queries: list[Query]
    unit: str = "short"
    width: int = 8
    height: int = 8
    defaults: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def timeseries(title: str, description: str, queries: list[Query], unit: str, **kw: Any) -> Panel:
    return Panel("timeseries", title, description, queries, unit, **kw)


def threshold_line(value: float, color: str = "red") -> dict[str, Any]:
    """Field defaults that draw a dashed line at `value`: the limit a series should be read against."""
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": color, "value": value}],
        },
        "custom": {"thresholdsStyle": {"mode": "dashed"}},
    }


def bool_mappings() -> list[dict[str, Any]]:
    """0/1 signals shown as words and colours on a state timeline."""
    return [{"type": "value", "options": {"0": {"text": "no", "color": "green"}, "1": {"text": "yes", "color": "red"}}}]


# --- the panels, row by row --------------------------------------------------------------------------------


def golden_signals() -> list[Panel]:
    return [
        timeseries(
            "Requests per second: server and client",
            "What the API answered (server) and what Locust sent (client), per route. They should match; when "
            "client RPS stops growing as users grow, you have found the API's capacity (or the load generator's).",
            [
                Query(f"route:lab_http_requests:rate30s{{{ROUTE}}}", "server {{route}}"),
                Query(f"endpoint:locust_requests:rate30s{{{ENDPOINT}}}", "client {{endpoint}}"),
            ],
            "reqps",
        ),
        timeseries(
            "Latency P50 / P95 / P99: server and client",
            "Percentiles of response time as the API measured it (server) and as Locust measured it (client), "
            "with the SLO as a line. Watch P99: it rises first and most at the knee. A client P99 far above the "
            "server P99 means requests waited before the app saw them (see the queueing gap).",
            [
                Query(f"route:lab_http_request_duration_seconds:p50_rate30s{{{ROUTE}}}", "server P50 {{route}}"),
                Query(f"route:lab_http_request_duration_seconds:p95_rate30s{{{ROUTE}}}", "server P95 {{route}}"),
                Query(f"route:lab_http_request_duration_seconds:p99_rate30s{{{ROUTE}}}", "server P99 {{route}}"),
                Query(f"endpoint:locust_response_time_seconds:p50_rate30s{{{ENDPOINT}}}", "client P50 {{endpoint}}"),
                Query(f"endpoint:locust_response_time_seconds:p95_rate30s{{{ENDPOINT}}}", "client P95 {{endpoint}}"),
                Query(f"endpoint:locust_response_time_seconds:p99_rate30s{{{ENDPOINT}}}", "client P99 {{endpoint}}"),
                Query("max(locust_slo_seconds)", "SLO"),
            ],
            "s",
            width=10,
            extra={"overrides": [_override_style("SLO", {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}})]},
        ),
        timeseries(
            "Users",
            "Locust users running. Every other graph is read against this one: a knee in latency lines up with "
            "the number of users at which the API saturated.",
            [Query("max(locust_users)", "users")],
            "short",
            width=6,
        ),
        timeseries(
            "Error ratio",
            "Share of the API's answers that were 5xx (server) and of Locust's requests that failed (client: "
            "errors, non-200 answers, and answers slower than the SLO). Above 1% the SLO is breached.",
            [
                Query(f"route:lab_http_request_errors:ratio_rate30s{{{ROUTE}}}", "server 5xx {{route}}"),
                Query(f"endpoint:locust_failures:ratio_rate30s{{{ENDPOINT}}}", "client failures {{endpoint}}"),
            ],
            "percentunit",
            defaults=threshold_line(0.01),
        ),
        Panel(
            "heatmap",
            "Server latency heatmap",
            "How many requests took how long, over time (server side). A healthy API is one bright band; a band "
            "that climbs is queueing; two bands are two kinds of requests (or a slow downstream on some).",
            [
                Query(
                    f"sum by (le) (rate(lab_http_request_duration_seconds_bucket{{{ROUTE}}}[$__rate_interval]))",
                    "{{le}}",
                    format="heatmap",
                )
            ],
            "s",
            width=16,
            options={
                "calculate": False,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64},
                "yAxis": {"unit": "s", "axisPlacement": "left"},
                "rowsFrame": {"layout": "auto"},
                "tooltip": {"mode": "single", "yHistogram": True},
                "legend": {"show": True},
            },
        ),
    ]


def diagnosis() -> list[Panel]:
    return [
        Panel(
            "stat",
            "Verdict",
            f"The diagnosis rules' one verdict: {', '.join(VERDICTS)} (prometheus/rules/diagnosis.yml). "
            "The table beside "
            "it says what to change; the timeline below shows which signals led to it.",
            [Query("job:lab_diagnosis:verdict", "{{verdict}}", instant=True)],
            "none",
            width=6,
            height=6,
            defaults={"noValue": "no verdict: no traffic, or its first 15 s"},
            options={
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "textMode": "name",
                "colorMode": "background",
                "graphMode": "none",
                "justifyMode": "center",
            },
            extra={"overrides": [_override_color(v, c) for v, c in VERDICTS.items()]},
        ),
        Panel(
            "table",
            "What to change",
            "The verdict's alert (it fires after 10 s) and its advice. The alert's summary, with the numbers that "
            "back it, is in Prometheus under Alerts (http://127.0.0.1:9090/alerts).",
            [Query('ALERTS{alertstate="firing", alertname=~"Lab.*"}', instant=True, format="table")],
            "none",
            width=18,
            height=6,
            extra={
                "transformations": [
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": dict.fromkeys(("Time", "Value", "__name__", "alertstate"), True),
                            "indexByName": {"verdict": 0, "advice": 1, "alertname": 2, "severity": 3},
                            "renameByName": {"advice": "what to change", "alertname": "alert"},
                        },
                    }
                ]
            },
        ),
        Panel(
            "state-timeline",
            "Signals behind the verdict",
            "Each signal the diagnosis weighs, over time: red while it holds. The verdict takes the highest one "
            "that holds, in this order, once it held at two evaluations in a row: load generator saturated, event "
            "loop blocked, CPU-bound, I/O-bound, queueing, SLO breached. Requests wait means that, as the API "
            "measures it, requests wait (for a thread, a batch, a CPU, the event loop) as long as they are served, "
            "or that P99 (the worse of client and server) is over half the SLO.",
            [
                Query("job:lab_signal_load_generator_saturated:bool", "load generator saturated"),
                Query("job:lab_signal_event_loop_blocked:bool", "event loop blocked"),
                Query("job:lab_signal_cpu_bound:bool", "CPU-bound"),
                Query("job:lab_signal_io_bound:bool", "I/O-bound"),
                Query("job:lab_signal_queueing:bool", "queueing"),
                Query("job:lab_signal_slo_breached:bool", "SLO breached"),
                Query("job:lab_requests_waiting:bool", "requests wait"),
            ],
            "none",
            width=24,
            height=7,
            defaults={"mappings": bool_mappings(), "color": {"mode": "thresholds"}},
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        ),
        timeseries(
            "CPU utilization vs limit",
            "CPU the API's container uses as a share of its CPU limit (100% = the limit, dashed line at 75%). "
            "Above 75% while latency rises: CPU-bound (requests queue for the CPU long before it reaches 100%). "
            "Low while latency rises: the API is waiting, not computing (I/O-bound or a blocked event loop). "
            "Throttled periods: how often the limit stopped it (over 25% also counts as CPU-bound).",
            [
                Query("instance:lab_cpu_utilization:ratio_rate30s", "CPU used / limit {{instance}}"),
                Query("instance:lab_cpu_throttled_periods:ratio_rate30s", "throttled periods {{instance}}"),
            ],
            "percentunit",
            defaults=threshold_line(0.75),
        ),
        timeseries(
            "In flight vs capacity",
            "Requests inside the API right now against the threadpool's threads (the most sync handlers can run "
            "at once), and requests waiting for a thread. In flight at or above capacity (it counts the waiting too), "
            "while CPU is low: I/O-bound, every thread waits. Async handlers are not capped by the threadpool.",
            [
                Query(f"sum by (instance) (lab_http_requests_in_flight{{{ROUTE}}})", "in flight {{instance}}"),
                Query("sum by (instance) (lab_threadpool_threads_capacity)", "thread capacity {{instance}}"),
                Query("sum by (instance) (lab_threadpool_tasks_waiting)", "waiting for a thread {{instance}}"),
            ],
            "short",
        ),
        timeseries(
            "Queueing gap: client P99 − server P99",
            "Time a request spent before the app saw it (socket backlog, waiting for a worker), at P99. Near zero "
            "is healthy; above 100 ms the diagnosis calls it queueing. It grows when every worker is busy.",
            [Query(f"route:lab_queueing_gap_seconds:p99_rate30s{{{ROUTE}}}", "gap {{route}}")],
            "s",
            defaults={**threshold_line(0.1, "orange"), **NO_CLIENT},
        ),
        timeseries(
            "Little's law: requests in the system",
            "L = λ × W: requests in the system as the client sees them (RPS × mean response time) against the "
            "requests the app counts in flight. The difference is a queue outside the app that the app's own "
            "metrics cannot show.",
            [
                Query("job:lab_requests_in_system:littles_law", "in the system (client RPS × latency)"),
                Query("job:lab_requests_in_flight:sum", "in flight (the app's count)"),
                Query("job:lab_requests_outside_app:littles_law", "queued outside the app"),
            ],
            "short",
            width=12,
            defaults=NO_CLIENT,
        ),
        timeseries(
            "Event-loop lag",
            "How late each worker's event loop ran a probe scheduled every 0.25 s. A healthy loop is late by a "
            "millisecond or two; tens of milliseconds mean a handler blocks the loop (async-blocking), and then "
            "every request in that worker waits.",
            [
                Query("job:lab_event_loop_lag_seconds:mean_rate30s", "mean lag"),
                Query("job:lab_event_loop_lag_seconds:max", "worst worker, last second"),
            ],
            "s",
            width=12,
            defaults=threshold_line(0.05, "orange"),
        ),
    ]


def cpu_and_memory() -> list[Panel]:
    return [
        timeseries(
            "CPU per gunicorn worker",
            "CPU each API worker uses (100% = one core). One worker can use one core at most (the GIL): a "
            "CPU-bound API needs as many workers as its CPU limit has cores.",
            [Query("pid:lab_worker_cpu:rate30s", "{{instance}} pid {{pid}}")],
            "percentunit",
        ),
        timeseries(
            "Container CPU: used vs limit",
            "Cores the API's container uses, against its limit (cores). Usage cannot cross the limit: the "
            "kernel throttles the container instead, and the time it spends throttled is added latency.",
            [
                Query(
                    "sum by (instance) (rate(lab_container_cpu_usage_seconds_total[$__rate_interval]))",
                    "used {{instance}}",
                ),
                Query("max by (instance) (lab_container_cpu_limit_cores)", "limit {{instance}}"),
                Query(
                    "sum by (instance) (rate(lab_container_cpu_throttled_seconds_total[$__rate_interval]))",
                    "throttled seconds per second {{instance}}",
                ),
            ],
            "suffix: cores",
        ),
        timeseries(
            "API workers",
            "Live gunicorn workers per replica. A dip is a worker that died and was replaced; more workers is "
            "the more-workers scenario.",
            [Query("sum by (instance) (lab_workers)", "workers {{instance}}")],
            "short",
        ),
        timeseries(
            "Memory per worker",
            "Resident memory of each API worker. Every worker loads its own copy of the models, so memory grows "
            "with the number of workers: the price of scaling by processes.",
            [Query("lab_worker_resident_memory_bytes", "{{instance}} pid {{pid}}")],
            "bytes",
        ),
        timeseries(
            "Container memory vs limit",
            "Memory the API's container uses against its limit. Close to the limit, the kernel kills a worker "
            "(OOM) and gunicorn replaces it: watch API workers dip at the same moment.",
            [
                Query("sum by (instance) (lab_container_memory_usage_bytes)", "used {{instance}}"),
                Query("max by (instance) (lab_container_memory_limit_bytes)", "limit {{instance}}"),
            ],
            "bytes",
        ),
        timeseries(
            "Memory utilization",
            "The container's memory as a share of its limit (dashed line at 90%).",
            [Query("instance:lab_memory_utilization:ratio", "{{instance}}")],
            "percentunit",
            defaults=threshold_line(0.9),
        ),
    ]


def inside_the_request() -> list[Panel]:
    stage_mean = (
        f"sum by (stage) (rate(lab_request_stage_duration_seconds_sum{{{ROUTE}}}[$__rate_interval]))\n"
        f"/ sum by (stage) (rate(lab_request_stage_duration_seconds_count{{{ROUTE}}}[$__rate_interval]))"
    )

    def stage_p99(stage: str) -> str:
        return (
            "histogram_quantile(0.99, sum by (route, le) "
            f'(rate(lab_request_stage_duration_seconds_bucket{{stage="{stage}", {ROUTE}}}[$__rate_interval])))'
        )

    return [
        timeseries(
            "Where the time goes: mean time per stage",
            "A request's mean time in each stage, stacked: the top of the stack is the mean server time. The "
            "stage that grows with load is the bottleneck: threadpool_wait = not enough threads, downstream = "
            "I/O, batch_queue = waiting for a batch, inference or cpu_work = CPU, cpu_wait = requests queue for "
            "the CPU.",
            [Query(stage_mean, "{{stage}}")],
            "s",
            width=12,
            defaults={"custom": {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 40}},
        ),
        timeseries(
            "Waiting vs being served, per request",
            "A request's mean time waiting (for a thread, a batch, a CPU: the stages threadpool_wait, batch_queue "
            "and cpu_wait, plus the event loop's lag) against its mean time being served (validation, downstream, "
            "CPU work, inference, serialization), as the API measures it whoever sends the load. Waiting as long "
            "as being served (ratio 1) means requests queue: with the CPU at its limit, CPU-bound; with threads "
            "full and the CPU idle, I/O-bound.",
            [
                Query("job:lab_request_wait_seconds:mean_rate30s", "waiting"),
                Query("job:lab_request_service_seconds:mean_rate30s", "being served"),
                Query("job:lab_request_wait_per_service:ratio_rate30s", "waiting / served"),
            ],
            "s",
            width=12,
            extra={
                "overrides": [_override_style("waiting / served", {"unit": "none", "custom.axisPlacement": "right"})]
            },
        ),
        timeseries(
            "Accept queue",
            "Connections the kernel has accepted on the API's listening socket that no worker has taken yet, per "
            "replica. Workers take them at once while they have a moment; above 0 for long, every worker is too "
            "busy even to accept (a blocked event loop, a saturated CPU), and requests wait where the app cannot "
            "time them.",
            [Query("sum by (instance) (lab_listen_queue_connections)", "accept queue {{instance}}")],
            "short",
            width=12,
        ),
        timeseries(
            "Model inference P99",
            "Time the scikit-learn model call takes, at P99 (one row, or a whole batch with batching on). It "
            "rises under load only when the CPU is short: the model itself does not get slower.",
            [Query(stage_p99("inference"), "inference P99 {{route}}")],
            "s",
            width=12,
        ),
        timeseries(
            "Downstream wait P99",
            "Time spent waiting on the simulated downstream call (a feature store, a database), at P99. Shown only "
            "when the scenario sets a downstream latency. Constant under load when awaited; it is the CPU that "
            "idles meanwhile.",
            [Query(stage_p99("downstream"), "downstream P99 {{route}}")],
            "s",
            width=12,
        ),
        timeseries(
            "Batch size",
            "Mean number of requests the micro-batcher put into one model call (only with batching on). It "
            "grows with load: that is how batching turns more users into more RPS for the same CPU.",
            [
                Query(
                    "sum(rate(lab_batch_size_sum[$__rate_interval]))\n"
                    "/ (sum(rate(lab_batch_size_count[$__rate_interval])) > 0)",
                    "mean batch size",
                )
            ],
            "short",
            width=12,
        ),
    ]


def load_generator() -> list[Panel]:
    return [
        timeseries(
            "Locust workers",
            "Worker processes connected to the Locust master. Add them when one is above 90% CPU, during a "
            "test too: docker compose up -d --no-deps --no-recreate --scale locust-worker=N locust-worker.",
            [Query("max(locust_workers)", "workers")],
            "short",
            width=6,
            defaults=NO_CLIENT,
        ),
        timeseries(
            "Locust worker CPU",
            "CPU of each Locust worker (100% = one core; dashed line at 90%). Above 90% the load generator is "
            "the bottleneck: it sends late and times late, so no other number on this dashboard can be trusted.",
            [Query("locust_worker_cpu_percent", "{{worker}}")],
            "percent",
            width=9,
            defaults={**threshold_line(90), **NO_CLIENT},
        ),
        timeseries(
            "Locust worker memory",
            "Resident memory of each Locust worker. It grows with users (each holds a connection and a "
            "greenlet); a steady climb at constant users is a leak in a locustfile.",
            [Query("locust_worker_memory_bytes", "{{worker}}")],
            "bytes",
            width=9,
            defaults=NO_CLIENT,
        ),
        timeseries(
            "Client requests and failures per second, per endpoint",
            "What Locust sent and what failed, per endpoint. Failures include answers slower than the SLO, so "
            "they start before any error does.",
            [
                Query(f"endpoint:locust_requests:rate30s{{{ENDPOINT}}}", "sent {{endpoint}}"),
                Query(
                    f"sum by (endpoint) (rate(locust_failures_total{{{ENDPOINT}}}[$__rate_interval]))",
                    "failed {{endpoint}}",
                ),
            ],
            "reqps",
            width=12,
            defaults=NO_CLIENT,
        ),
        timeseries(
            "Locust's own percentiles (last 10 s)",
            "P50/P95/P99 as the Locust UI shows them, over its last 10 s or so: the same numbers the learner sees "
            "in the browser, to check the dashboard against.",
            [Query(f"locust_response_time_percentile_seconds{{{ENDPOINT}}}", "{{endpoint}} P{{quantile}}")],
            "s",
            width=12,
            defaults=NO_CLIENT,
        ),
    ]


def balancer() -> list[Panel]:
    return [
        timeseries(
            "Balancer queue: requests waiting for a replica",
            "Requests the balancer (HAProxy, in front of the API) holds because every replica already has "
            "BALANCER_MAXCONN in flight. Above zero, the queue is in front of the API, where its own timing cannot "
            "see it: add replicas or make each request cheaper. Compose lab only.",
            [Query("job:haproxy_backend_queue:sum", "waiting")],
            "short",
        ),
        timeseries(
            "Balancer queue time",
            "How long requests waited in the balancer's queue for a replica (HAProxy's average over its last "
            "1024 requests). Over 100 ms, the diagnosis says queueing.",
            [Query("job:haproxy_backend_queue_time_seconds:max", "average wait")],
            "s",
            defaults=threshold_line(0.1, "orange"),
        ),
        timeseries(
            "Requests per replica (balancer)",
            "Answers per second from each API replica, as the balancer counts them (api1, api2... are its slots "
            "for the replicas it found). The balancer sends each request to the replica with the fewest in "
            "flight, so healthy replicas serve about the same.",
            [Query("server:haproxy_server_http_responses:rate30s", "{{server}}")],
            "reqps",
        ),
        timeseries(
            "In flight per replica (balancer)",
            "Requests each replica holds now, as the balancer sees them. A replica stuck at BALANCER_MAXCONN "
            "(100 by default) while others are not is slower than the rest.",
            [Query("server:haproxy_server_sessions:current", "{{server}}")],
            "short",
            width=12,
        ),
        timeseries(
            "Balancer errors",
            "Failed connections and broken answers per replica, and the 5xx the balancer answered (503: no "
            "replica up, or a queue timeout). A replica that restarts shows here before anywhere else.",
            [
                Query("server:haproxy_server_errors:rate30s", "{{server}} errors"),
                Query("job:haproxy_backend_http_responses_5xx:rate30s", "5xx answered"),
            ],
            "reqps",
            width=12,
        ),
    ]


ROWS = [
    ("Golden signals: traffic, latency, errors, users", golden_signals),
    ("Diagnosis: what is the bottleneck?", diagnosis),
    ("CPU and memory", cpu_and_memory),
    ("Inside the request", inside_the_request),
    ("Load generator", load_generator),
    ("Balancer: the queue in front of the API (compose lab)", balancer),
]

# Marks on every graph when the load or the API changed, so a knee lines up with its cause. Each query is 1 at
# the step where the value differs from the previous scrape's and 0 elsewhere (`!= bool`): Grafana marks only
# samples above 0, and a plain `!=` would return the new value itself, so a drop to zero users would never show.
ANNOTATIONS = [
    ("Users changed", "max(locust_users) != bool max(locust_users offset 5s)", "#F2CC0C"),
    ("Locust workers changed", "max(locust_workers) != bool max(locust_workers offset 5s)", "#8AB8FF"),
    ("API workers changed", "sum(lab_workers) != bool sum(lab_workers offset 5s)", "#FF7383"),
]


# --- JSON --------------------------------------------------------------------------------------------------


def _override_color(name: str, color: str) -> dict[str, Any]:
    return _override_style(name, {"color": {"mode": "fixed", "fixedColor": color}})


def _override_style(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


def _target(query: Query, ref_id: str) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
        "format": query.format,
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults = {"unit": panel.unit, **panel.defaults}
    if panel.kind == "timeseries":
        defaults["custom"] = {"lineWidth": 2, "fillOpacity": 10, "showPoints": "never", **defaults.get("custom", {})}
    options = panel.options or {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
        "fieldConfig": {"defaults": defaults, "overrides": panel.extra.get("overrides", [])},
        "options": options,
        **{k: v for k, v in panel.extra.items() if k != "overrides"},
    }


def _variable(name: str, label: str, metric: str, description: str) -> dict[str, Any]:
    query = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values", "qryType": 1},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    }


def _annotation(name: str, expr: str, color: str) -> dict[str, Any]:
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": color,
        "expr": expr,
        "step": f"{STEP_SECONDS}s",
        "titleFormat": name,
        "textFormat": "",
        "tagKeys": "",
        "useValueForTime": False,
    }


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, make in ROWS:
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": title, "collapsed": False, "panels": [],
             "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1}}
        )  # fmt: skip
        y += 1
        x, line_height = 0, 0
        for panel in make():
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": "model-serving-lab",
        "title": "Model serving lab",
        "description": "Why is the model API slow under load? Golden signals, the diagnosis, and the evidence.",
        "tags": ["model-serving-lab"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 41,
        "version": 1,
        "time": {"from": "now-15m", "to": "now"},
        "refresh": f"{STEP_SECONDS}s",
        "timezone": "browser",
        "templating": {
            "list": [
                _variable(
                    "route",
                    "API route",
                    f'lab_http_requests_total{{route=~"{MODEL_ROUTES_REGEX}"}}',
                    "The API routes the server-side panels show.",
                ),
                _variable(
                    "endpoint",
                    "Locust endpoint",
                    "locust_requests_total",
                    "The endpoints the client-side (Locust) panels show.",
                ),
            ]
        },
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *(_annotation(*a) for a in ANNOTATIONS),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARD_FILE, help="where to write the JSON (%(default)s)")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
