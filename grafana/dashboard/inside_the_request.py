"""Row 4, inside the request: where a request's time goes, stage by stage, waiting against being served.

Raw stage series with `$__rate_interval` here: no recording rule keeps them per stage.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import ROUTE, query, ratio_on_the_right, timeseries_panel

TITLE = "Inside the request"

STAGE_MEAN = (
    f"sum by (stage) (rate(lab_request_stage_duration_seconds_sum{{{ROUTE}}}[$__rate_interval]))\n"
    f"/ sum by (stage) (rate(lab_request_stage_duration_seconds_count{{{ROUTE}}}[$__rate_interval]))"
)


def stage_p99(stage: str) -> str:
    """PromQL: P99 of one stage's time, per route."""
    return (
        "histogram_quantile(0.99, sum by (route, le) "
        f'(rate(lab_request_stage_duration_seconds_bucket{{stage="{stage}", {ROUTE}}}[$__rate_interval])))'
    )


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "Where the time goes: mean time per stage",
            "A request's mean time in each stage, stacked: the top of the stack is the mean server time. The "
            "stage that grows with load is the bottleneck: threadpool_wait = not enough threads, downstream = "
            "I/O, batch_queue = waiting for a batch, inference or cpu_work = CPU, cpu_wait = requests queue for "
            "the CPU.",
            [query(STAGE_MEAN, "{{stage}}")],
            "s",
            width=12,
        )
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
        .fill_opacity(40),
        timeseries_panel(
            "Waiting vs being served, per request",
            "A request's mean time waiting (for a thread, a batch, a CPU: the stages threadpool_wait, batch_queue "
            "and cpu_wait, plus the event loop's lag) against its mean time being served (validation, downstream, "
            "CPU work, inference, serialization), as the API measures it whoever sends the load. Waiting as long "
            "as being served (ratio 1) means requests queue: with the CPU at its limit, CPU-bound; with threads "
            "full and the CPU idle, I/O-bound.",
            [
                query("job:lab_request_wait_seconds:mean_rate30s", "waiting"),
                query("job:lab_request_service_seconds:mean_rate30s", "being served"),
                query("job:lab_request_wait_per_service:ratio_rate30s", "waiting / served"),
            ],
            "s",
            width=12,
        ).override_by_name("waiting / served", ratio_on_the_right()),
        timeseries_panel(
            "Accept queue",
            "Connections the kernel has accepted on the API's listening socket that no worker has taken yet, per "
            "replica. Workers take them at once while they have a moment; above 0 for long, every worker is too "
            "busy even to accept (a blocked event loop, a saturated CPU), and requests wait where the app cannot "
            "time them.",
            [query("sum by (instance) (lab_listen_queue_connections)", "accept queue {{instance}}")],
            "short",
            width=12,
        ),
        timeseries_panel(
            "Model inference P99",
            "Time the scikit-learn model call takes, at P99 (one row, or a whole batch with batching on). It "
            "rises under load only when the CPU is short: the model itself does not get slower.",
            [query(stage_p99("inference"), "inference P99 {{route}}")],
            "s",
            width=12,
        ),
        timeseries_panel(
            "Downstream wait P99",
            "Time spent waiting on the simulated downstream call (a feature store, a database), at P99. Shown only "
            "when the scenario sets a downstream latency. Constant under load when awaited; it is the CPU that "
            "idles meanwhile.",
            [query(stage_p99("downstream"), "downstream P99 {{route}}")],
            "s",
            width=12,
        ).no_value("no downstream wait: LAB_DOWNSTREAM_LATENCY_MS is 0"),
        timeseries_panel(
            "Batch size",
            "Mean number of requests the micro-batcher put into one model call (only with batching on). It "
            "grows with load: that is how batching turns more users into more RPS for the same CPU.",
            [
                query(
                    "sum(rate(lab_batch_size_sum[$__rate_interval]))\n"
                    "/ (sum(rate(lab_batch_size_count[$__rate_interval])) > 0)",
                    "mean batch size",
                )
            ],
            "short",
            width=12,
        ).no_value("no batches: batching is off (LAB_BATCHING=false)"),
    ]
