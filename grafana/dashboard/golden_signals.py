"""Row 1, the golden signals: traffic, latency, errors and the users behind them, server and client side."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap, stat
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from grafana.dashboard.panels import ENDPOINT, ROUTE, dashed, panel, query, timeseries_panel
from model_api.vocabulary import P999_MIN_SAMPLES, TOO_FEW_REQUESTS

TITLE = "Golden signals: traffic, latency, errors, users"


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "Requests per second: server and client",
            "What the API answered (server) and what Locust sent (client), per route. They should match; when "
            "client RPS stops growing as users grow, you have found the API's capacity (or the load generator's).",
            [
                query(f"route:lab_http_requests:rate30s{{{ROUTE}}}", "server {{route}}"),
                query(f"endpoint:locust_requests:rate30s{{{ENDPOINT}}}", "client {{endpoint}}"),
            ],
            "reqps",
        ),
        timeseries_panel(
            "Latency P50 / P95 / P99 / P99.9: server and client",
            "Percentiles of response time as the API measured it (server) and as Locust measured it (client), "
            "with the SLO as a line. Watch P99: it rises first and most at the knee. A client P99 far above the "
            "server P99 means requests waited before the app saw them (see the queueing gap). P99.9 (one request "
            f"in 1,000 slower) is drawn only where its 30 s window holds {P999_MIN_SAMPLES:,} requests or more: "
            "the tiles beside it say how many there were.",
            [
                query(f"route:lab_http_request_duration_seconds:p50_rate30s{{{ROUTE}}}", "server P50 {{route}}"),
                query(f"route:lab_http_request_duration_seconds:p95_rate30s{{{ROUTE}}}", "server P95 {{route}}"),
                query(f"route:lab_http_request_duration_seconds:p99_rate30s{{{ROUTE}}}", "server P99 {{route}}"),
                query(f"route:lab_http_request_duration_seconds:p999_rate30s{{{ROUTE}}}", "server P99.9 {{route}}"),
                query(f"endpoint:locust_response_time_seconds:p50_rate30s{{{ENDPOINT}}}", "client P50 {{endpoint}}"),
                query(f"endpoint:locust_response_time_seconds:p95_rate30s{{{ENDPOINT}}}", "client P95 {{endpoint}}"),
                query(f"endpoint:locust_response_time_seconds:p99_rate30s{{{ENDPOINT}}}", "client P99 {{endpoint}}"),
                query(f"endpoint:locust_response_time_seconds:p999_rate30s{{{ENDPOINT}}}", "client P99.9 {{endpoint}}"),
                query("max(locust_slo_seconds)", "SLO"),
            ],
            "s",
            width=10,
        ).override_by_name("SLO", [dashed()]),
        p999_now(),
        timeseries_panel(
            "Users",
            "Locust users running. Every other graph is read against this one: a knee in latency lines up with "
            "the number of users at which the API saturated.",
            [query("max(locust_users)", "users")],
            "short",
            width=6,
        ),
        timeseries_panel(
            "Error ratio",
            "Share of the API's answers that were 5xx (server) and of Locust's requests that failed (client: "
            "errors, non-200 answers, and answers slower than the SLO). Above 1% the SLO is breached.",
            [
                query(f"route:lab_http_request_errors:ratio_rate30s{{{ROUTE}}}", "server 5xx {{route}}"),
                query(f"endpoint:locust_failures:ratio_rate30s{{{ENDPOINT}}}", "client failures {{endpoint}}"),
            ],
            "percentunit",
            width=6,
            line_at=0.01,
        ),
        panel(
            heatmap.Panel(),
            "Server latency heatmap",
            "How many requests took how long, over time (server side). A healthy API is one bright band; a band "
            "that climbs is queueing; two bands are two kinds of requests (or a slow downstream on some).",
            [
                query(
                    f"sum by (le) (rate(lab_http_request_duration_seconds_bucket{{{ROUTE}}}[$__rate_interval]))",
                    "{{le}}",
                    format=PromQueryFormat.HEATMAP,
                )
            ],
            "s",
            width=12,
        )
        # Prometheus's buckets as they are (no recalculation), on a scale that shows the few slow ones too.
        .calculate(False)
        .cell_gap(1)
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_model.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_model.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .y_axis(heatmap.YAxisConfig().unit("s").axis_placement(common.AxisPlacement.LEFT))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
        .mode(common.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
        .show_legend(),
    ]


def p999_now() -> stat.Panel:
    """The P99.9 of each route and endpoint now, each beside the requests its window holds; under
    P999_MIN_SAMPLES the rules give NaN, shown in words."""
    return (
        panel(
            stat.Panel(),
            "P99.9 now, and the requests behind it",
            "The P99.9 of each route (server) and endpoint (client) over the last 30 s, and how many requests that "
            f"window holds. Only one request in 1,000 is slower than a P99.9, so below {P999_MIN_SAMPLES:,} "
            f"requests it is not a number but '{TOO_FEW_REQUESTS}' (the count turns from red to green at "
            f"{P999_MIN_SAMPLES:,}): from fewer, it would be the slowest one or two requests, and jump with each "
            "new one. Hold the load longer, or add users, to read it.",
            [
                query(
                    f"route:lab_http_request_duration_seconds:p999_rate30s{{{ROUTE}}}",
                    "server P99.9 {{route}}",
                    instant=True,
                ),
                query(
                    f"route:lab_http_requests:count30s{{{ROUTE}}}", "server requests in 30 s {{route}}", instant=True
                ),
                query(
                    f"endpoint:locust_response_time_seconds:p999_rate30s{{{ENDPOINT}}}",
                    "client P99.9 {{endpoint}}",
                    instant=True,
                ),
                query(
                    f"endpoint:locust_requests:count30s{{{ENDPOINT}}}",
                    "client requests in 30 s {{endpoint}}",
                    instant=True,
                ),
            ],
            "s",
            width=6,
        )
        .no_value("no requests in the last 30 s")
        # NaN is the rules' "too few requests"; null too, for a Grafana that turns NaN into null.
        .mappings(
            [
                model.SpecialValueMap(
                    options=model.DashboardSpecialValueMapOptions(
                        match=model.SpecialValueMatch.NULL_AND_NAN,
                        result=model.ValueMappingResult(text=TOO_FEW_REQUESTS, color="text"),
                    )
                )
            ]
        )
        # One instant, one value per series: "last" keeps a NaN that "lastNotNull" might pass over.
        .reduce_options(common_builders.ReduceDataOptions().calcs(["last"]).fields("").values(False))
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .orientation(common.VizOrientation.HORIZONTAL)
        .thresholds(
            dashboard_builders.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="text")])
        )
        .override_by_query("B", requests_in_window())
        .override_by_query("D", requests_in_window())
    )


def requests_in_window() -> list[model.DynamicConfigValue]:
    """Override properties for a count of requests: a plain number, red below P999_MIN_SAMPLES, green from it."""
    return [
        model.DynamicConfigValue(id_val="unit", value="short"),
        model.DynamicConfigValue(id_val="decimals", value=0),
        model.DynamicConfigValue(
            id_val="thresholds",
            value=model.ThresholdsConfig(
                mode=model.ThresholdsMode.ABSOLUTE,
                steps=[
                    model.Threshold(value=None, color="red"),
                    model.Threshold(value=P999_MIN_SAMPLES, color="green"),
                ],
            ),
        ),
    ]
