"""Row 7, cold start: what a worker's start costs, and the requests that meet a worker not yet ready."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import query, timeseries_panel

TITLE = "Cold start"

REQUESTS = 'rate(lab_http_requests_total{route=~"$route"STATUS}[$__rate_interval])'


def panels() -> list[Builder[model.Panel]]:
    not_ready = REQUESTS.replace("STATUS", ',status="503"')
    any_status = REQUESTS.replace("STATUS", "")
    return [
        timeseries_panel(
            "Worker start, by phase",
            "How long the slowest worker's start took: fetch (the models' download, LAB_MODEL_FETCH_MS), load "
            "(unpickling them), warm_up (the warm-up predictions) and ready (from the process start, imports "
            "included). A new replica or a restarted worker serves nothing for this long: the cold-start scenario.",
            [query("max by (phase, model_runtime) (lab_cold_start_seconds)", "{{phase}} ({{model_runtime}})")],
            "s",
        ),
        timeseries_panel(
            "First request vs the usual",
            "The slowest first request a worker answered on each model route, against the median of all. Without "
            "the warm-up (LAB_WARM_UP=false) the first one pays for what the first prediction loads.",
            [
                query("max by (route) (lab_first_request_seconds)", "first {{route}}"),
                query(
                    "histogram_quantile(0.5, sum by (le, route) "
                    '(rate(lab_http_request_duration_seconds_bucket{route=~"$route"}[$__rate_interval])))',
                    "median {{route}}",
                ),
            ],
            "s",
        ),
        timeseries_panel(
            "Answered 503: not loaded yet",
            "Requests a worker answered 503 because its models were still loading: only without the readiness "
            "gate (LAB_READINESS_GATE=false), which would have kept them away from it. Zero while requests flow "
            "and none meets a cold worker.",
            [
                query(
                    f"sum by (instance) ({not_ready}) or on (instance) 0 * sum by (instance) ({any_status})",
                    "503/s {{instance}}",
                )
            ],
            "reqps",
        ),
    ]
