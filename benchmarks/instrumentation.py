"""Benchmark 1, what the request metrics cost: POST /predict on one pinned worker with LAB_METRICS on and off,
alternating, and the metric work of one request timed in-process."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmarks import metric_cost
from benchmarks.harness import CLIENT_CORE, DEFAULT_KNOBS, SERVER_CORE, Bench, check_endpoint, progress
from benchmarks.wrk import WrkResult
from model_api.data import COURSE_HOUSE

SATURATION_CONNECTIONS = 16  # enough to keep the worker busy
TARGET_METRICS_DROP_PCT = 3.0


@dataclass
class InstrumentationResult:
    """RPS of /predict with metrics on and off, alternating runs, and their medians."""

    runs: list[WrkResult] = field(default_factory=list)
    rps_range_on: tuple[float, float] = (0.0, 0.0)  # the spread of one side's runs: the noise to judge by
    rps_range_off: tuple[float, float] = (0.0, 0.0)
    median_rps_on: float = 0.0
    median_rps_off: float = 0.0
    median_p99_on_ms: float = 0.0
    median_p99_off_ms: float = 0.0
    ratio_off_on: float = 0.0
    drop_pct: float = 0.0
    median_cpu_us_on: float = 0.0  # server CPU per request: what the metrics really cost, free of VM noise
    median_cpu_us_off: float = 0.0
    cpu_drop_pct: float = 0.0  # the RPS drop that cost implies for a CPU-bound worker: 1 - cpu_off / cpu_on
    metric_us_per_request: float = 0.0  # the metric work itself, measured in-process (benchmarks/metric_cost.py)
    metric_share_pct: float = 0.0  # that work as a share of a request's server CPU (median, metrics on)

    @property
    def met(self) -> bool:
        return self.metric_share_pct <= TARGET_METRICS_DROP_PCT


def summarize(runs: list[WrkResult], metric_us_per_request: float) -> InstrumentationResult:
    """Medians and spreads of each side (runs labelled `metrics on ...` and `metrics off ...`), and the metric
    work as a share of a request's server CPU with metrics on."""
    on = [r for r in runs if r.label.startswith("metrics on")]
    off = [r for r in runs if r.label.startswith("metrics off")]
    median_rps_on, median_rps_off = statistics.median(r.rps for r in on), statistics.median(r.rps for r in off)
    cpu_on = statistics.median(r.server_cpu_us_per_request or 0.0 for r in on)
    cpu_off = statistics.median(r.server_cpu_us_per_request or 0.0 for r in off)
    return InstrumentationResult(
        runs=runs,
        rps_range_on=(min(r.rps for r in on), max(r.rps for r in on)),
        rps_range_off=(min(r.rps for r in off), max(r.rps for r in off)),
        median_rps_on=median_rps_on,
        median_rps_off=median_rps_off,
        median_p99_on_ms=statistics.median(r.p99_ms for r in on),
        median_p99_off_ms=statistics.median(r.p99_ms for r in off),
        ratio_off_on=median_rps_off / median_rps_on,
        drop_pct=(1 - median_rps_on / median_rps_off) * 100,
        median_cpu_us_on=cpu_on,
        median_cpu_us_off=cpu_off,
        cpu_drop_pct=(1 - cpu_off / cpu_on) * 100,
        metric_us_per_request=metric_us_per_request,
        metric_share_pct=metric_us_per_request / cpu_on * 100,
    )


def run(bench: Bench) -> InstrumentationResult:
    """Max RPS of POST /predict on one worker pinned to one core (wrk on the other), metrics on vs off,
    alternating on/off/on/off..., medians. Pinned, because two workers sharing two cores with wrk vary by 15-30%
    from run to run, which buries a difference of a few percent."""
    runs = []
    for round_number in range(1, bench.options.repeats + 1):
        for metrics in ("true", "false"):
            label = f"metrics {'on' if metrics == 'true' else 'off'} #{round_number}"
            progress(f"instrumentation: starting 1 worker on core {SERVER_CORE} with LAB_METRICS={metrics} ({label})")
            with bench.api(1, {"LAB_METRICS": metrics, **DEFAULT_KNOBS}, core=SERVER_CORE) as api:
                check_endpoint(f"{api.url}/predict", COURSE_HOUSE)
                runs.append(bench.measure(label, api, "/predict", SATURATION_CONNECTIONS, CLIENT_CORE))
    progress("instrumentation: timing the metric work of one request in-process")
    return summarize(runs, metric_cost.run_isolated())
