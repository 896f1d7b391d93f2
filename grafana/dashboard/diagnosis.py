"""Row 2, the diagnosis: the verdict, what to change, the signals behind it and the evidence each signal weighs."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, statetimeline, table
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from grafana.dashboard.panels import NO_CLIENT, ROUTE, fixed_color, legend_below, panel, query, timeseries_panel, yes_no
from model_api.vocabulary import VERDICTS

TITLE = "Diagnosis: what is the bottleneck?"


def panels() -> list[Builder[model.Panel]]:
    return [verdict(), what_to_change(), signals(), *evidence()]


def verdict() -> stat.Panel:
    tile = (
        panel(
            stat.Panel(),
            "Verdict",
            f"The diagnosis rules' one verdict: {', '.join(VERDICTS)} (prometheus/rules/diagnosis.yml). "
            "The table beside it says what to change; the timeline below shows which signals led to it.",
            [query("job:lab_diagnosis:verdict", "{{verdict}}", instant=True)],
            "none",
            width=6,
            height=6,
        )
        .no_value("no verdict: no traffic, or its first 15 s")
        # The verdict's name, on its colour: the series' legend is the verdict label.
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .text_mode(common.BigValueTextMode.NAME)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.CENTER)
    )
    for name, color in VERDICTS.items():
        tile = tile.override_by_name(name, [fixed_color(color)])
    return tile


def what_to_change() -> table.Panel:
    return panel(
        table.Panel(),
        "What to change",
        "The verdict's alert (it fires after 10 s) and its advice. The alert's summary, with the numbers that "
        "back it, is in Prometheus under Alerts (http://127.0.0.1:9090/alerts).",
        [query('ALERTS{alertstate="firing", alertname=~"Lab.*"}', instant=True, format=PromQueryFormat.TABLE)],
        "none",
        width=18,
        height=6,
    ).with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": dict.fromkeys(("Time", "Value", "__name__", "alertstate"), True),
                "indexByName": {"verdict": 0, "advice": 1, "alertname": 2, "severity": 3},
                "renameByName": {"advice": "what to change", "alertname": "alert"},
            },
        )
    )


def signals() -> statetimeline.Panel:
    return (
        panel(
            statetimeline.Panel(),
            "Signals behind the verdict",
            "Each signal the diagnosis weighs, over time: red while it holds. The verdict takes the highest one "
            "that holds, in this order, once it held at two evaluations in a row: load generator saturated, event "
            "loop blocked, CPU-bound, I/O-bound, queueing, SLO breached. Requests wait means that, as the API "
            "measures it, requests wait (for a thread, a batch, a CPU, the event loop) as long as they are served, "
            "or that P99 (the worse of client and server) is over half the SLO.",
            [
                query("job:lab_signal_load_generator_saturated:bool", "load generator saturated"),
                query("job:lab_signal_memory_bound:bool", "memory-bound"),
                query("job:lab_signal_event_loop_blocked:bool", "event loop blocked"),
                query("job:lab_signal_cpu_bound:bool", "CPU-bound"),
                query("job:lab_signal_io_bound:bool", "I/O-bound"),
                query("job:lab_signal_queueing:bool", "queueing"),
                query("job:lab_signal_slo_breached:bool", "SLO breached"),
                query("job:lab_requests_waiting:bool", "requests wait"),
            ],
            "none",
            width=24,
            height=7,
        )
        .mappings(yes_no())
        # Grafana's own defaults, said outright: the SDK's would hide the legend (what red and green mean).
        .legend(legend_below())
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.SINGLE).sort(common.SortOrder.NONE))
        .color_scheme(dashboard_builders.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
    )


def evidence() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "CPU utilization vs limit",
            "CPU the API's container uses as a share of its CPU limit (100% = the limit, dashed line at 75%). "
            "Above 75% while latency rises: CPU-bound (requests queue for the CPU long before it reaches 100%). "
            "Low while latency rises: the API is waiting, not computing (I/O-bound or a blocked event loop). "
            "Throttled periods: how often the limit stopped it (over 25% also counts as CPU-bound).",
            [
                query("instance:lab_cpu_utilization:ratio_rate30s", "CPU used / limit {{instance}}"),
                query("instance:lab_cpu_throttled_periods:ratio_rate30s", "throttled periods {{instance}}"),
            ],
            "percentunit",
            line_at=0.75,
        ),
        timeseries_panel(
            "In flight vs capacity",
            "Requests inside the API right now against the threadpool's threads (the most sync handlers can run "
            "at once), and requests waiting for a thread. In flight at or above capacity (it counts the waiting too), "
            "while CPU is low: I/O-bound, every thread waits. Async handlers are not capped by the threadpool.",
            [
                query(f"sum by (instance) (lab_http_requests_in_flight{{{ROUTE}}})", "in flight {{instance}}"),
                query("sum by (instance) (lab_threadpool_threads_capacity)", "thread capacity {{instance}}"),
                query("sum by (instance) (lab_threadpool_tasks_waiting)", "waiting for a thread {{instance}}"),
            ],
            "short",
        ),
        timeseries_panel(
            "Queueing gap: client P99 − server P99",
            "Time a request spent before the app saw it (socket backlog, waiting for a worker), at P99. Near zero "
            "is healthy; above 100 ms the diagnosis calls it queueing. It grows when every worker is busy.",
            [query(f"route:lab_queueing_gap_seconds:p99_rate30s{{{ROUTE}}}", "gap {{route}}")],
            "s",
            line_at=0.1,
            line_color="orange",
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Little's law: requests in the system",
            "L = λ × W: requests in the system as the client sees them (RPS × mean response time) against the "
            "requests the app counts in flight. The difference is a queue outside the app that the app's own "
            "metrics cannot show.",
            [
                query("job:lab_requests_in_system:littles_law", "in the system (client RPS × latency)"),
                query("job:lab_requests_in_flight:sum", "in flight (the app's count)"),
                query("job:lab_requests_outside_app:littles_law", "queued outside the app"),
            ],
            "short",
            width=12,
        ).no_value(NO_CLIENT),
        timeseries_panel(
            "Event-loop lag",
            "How late each worker's event loop ran a probe scheduled every 0.25 s. A healthy loop is late by a "
            "millisecond or two; tens of milliseconds mean a handler blocks the loop (async-blocking), and then "
            "every request in that worker waits.",
            [
                query("job:lab_event_loop_lag_seconds:mean_rate30s", "mean lag"),
                query("job:lab_event_loop_lag_seconds:max", "worst worker, last second"),
            ],
            "s",
            width=12,
            line_at=0.05,
            line_color="orange",
        ),
    ]
