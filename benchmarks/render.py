"""A benchmark run in Markdown: the header (machine, settings), a section per benchmark, warnings, and the wrk
command lines to rerun by hand."""

from __future__ import annotations

from benchmarks.handler_styles import (
    BATCHING_CONNECTIONS,
    TARGET_BATCHING_P99_MS,
    TARGET_BATCHING_RATIO,
    BatchingResult,
    style_of,
)
from benchmarks.harness import CLIENT_CORE, SERVER_CORE
from benchmarks.instrumentation import SATURATION_CONNECTIONS, TARGET_METRICS_DROP_PCT, InstrumentationResult
from benchmarks.model_runtimes import RuntimeComparison
from benchmarks.report import Report
from benchmarks.scrape import TARGET_SCRAPE_MS, ScrapeResult
from benchmarks.serving_path import render_serving_path
from benchmarks.wrk import WRK_THREADS, WRK_TIMEOUT, WrkResult
from lab.markdown import table

INSTRUMENTATION_NOTE = (
    "On a shared VM both the RPS and the CPU time per request of one configuration vary from run to run "
    "(see the spread in brackets) by more than the few percent measured. The metric work itself, timed "
    "in-process through the real middleware and stage histograms (benchmarks/metric_cost.py), has no "
    "network, wrk or scheduler in it (it measured 25-39 us across runs on this machine); as a share of a "
    "request's server CPU it is what a CPU-bound worker loses to metrics, and the figure the target is "
    "judged on."
)


def numbers(header: list[str], rows: list[list[str]]) -> str:
    """A table of figures: the first column names the row, the others are right-aligned numbers."""
    return table(header, rows, align="l" + "r" * (len(header) - 1))


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def cpu_cell(result: WrkResult) -> str:
    return "?" if result.server_cpu_us_per_request is None else f"{result.server_cpu_us_per_request:,.0f}"


def render_header(report: Report) -> str:
    """Machine, versions and settings of the run."""
    m, o = report.machine, report.options
    packages = ", ".join(f"{name} {version}" for name, version in m.packages.items())
    after = f"{m.after.busy_pct:.0f}% busy, {m.after.steal_pct:.0f}% steal" if m.after else "?"
    return "\n".join(
        [
            f"# API benchmark, {report.started_utc}" + (" (quick smoke run)" if o.quick else ""),
            "",
            f"- Machine: nproc {m.nproc}, {m.cpu_model}, Linux {m.kernel}; CPU governor {m.governor}",
            f"- Python {m.python}; {m.wrk}; {packages}",
            f"- Each point: {o.warmup_s} s warm-up (discarded), then {o.duration_s} s measured; "
            f"wrk {WRK_THREADS} thread, --timeout {WRK_TIMEOUT}; instrumentation repeated {o.repeats}x per side",
            f"- Pinned runs: gunicorn `taskset -c {SERVER_CORE}`, wrk `taskset -c {CLIENT_CORE}`; "
            "no simulated downstream wait, no extra CPU",
            f"- CPUs before the run: {m.before.busy_pct:.0f}% busy, {m.before.steal_pct:.0f}% steal "
            f"(load average {m.before.load_average[0]:.2f}); after the run: {after}",
        ]
    )


def render_instrumentation(result: InstrumentationResult) -> str:
    """Benchmark 1: every run in order, then the medians against the target."""
    runs = [
        [r.label, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", cpu_cell(r), r.describe_errors()]
        for r in result.runs
    ]
    on, off = result.rps_range_on, result.rps_range_off
    summary = [
        f"{result.median_rps_on:,.0f} ({on[0]:,.0f}-{on[1]:,.0f})",
        f"{result.median_rps_off:,.0f} ({off[0]:,.0f}-{off[1]:,.0f})",
        f"{result.drop_pct:+.1f}%",
        f"{result.median_cpu_us_on:,.0f} / {result.median_cpu_us_off:,.0f}",
        f"{result.cpu_drop_pct:+.1f}%",
        f"{result.metric_us_per_request:.0f} us = {result.metric_share_pct:.1f}%",
        f"<= {TARGET_METRICS_DROP_PCT:.0f}%: {verdict(result.met)}",
    ]
    summary_header = ["req/s metrics on", "req/s metrics off", "RPS drop (medians)", "CPU us/request on / off",
                      "RPS drop implied by CPU", "metric work per request (in-process)", "target"]  # fmt: skip
    return "\n\n".join(
        [
            f"## 1. Instrumentation cost: POST /predict, 1 worker on 1 core (sync handlers, the default), "
            f"{SATURATION_CONNECTIONS} connections",
            numbers(["run (in order)", "req/s", "P50 ms", "P99 ms", "server CPU us/request", "errors"], runs),
            "Medians (in brackets, the slowest and fastest run of each side: a difference inside that spread is "
            "noise):",
            numbers(summary_header, [summary]),
            INSTRUMENTATION_NOTE,
        ]
    )


def render_batching(result: BatchingResult) -> str:
    """Benchmark 2: the two async points at 64 connections, and the ratio against its targets."""
    rows = [
        [name, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", r.describe_errors()]
        for name, r in (("async, no batching", result.unbatched), ("async + batching", result.batched))
    ]
    return "\n\n".join(
        [
            f"## 2. Micro-batching: POST /classify, {BATCHING_CONNECTIONS} connections, 1 worker on 1 core",
            numbers(["handler", "req/s", "P50 ms", "P99 ms", "errors"], rows),
            f"Batched/unbatched: **{result.ratio:.1f}x** (target >= {TARGET_BATCHING_RATIO:.0f}x: "
            f"{verdict(result.ratio_met)}); batched P99 {result.batched.p99_ms:.1f} ms "
            f"(target < {TARGET_BATCHING_P99_MS:.0f} ms: {verdict(result.p99_met)}). "
            f"These are the matrix's two points at {BATCHING_CONNECTIONS} connections.",
        ]
    )


def render_scrape(result: ScrapeResult) -> str:
    """Benchmark 3: the scrape times against the target, and the traffic that came before."""
    header = ["workers", "scrapes", "median ms", "P99 ms", "max ms", f">= {TARGET_SCRAPE_MS:.0f} ms", "body bytes",
              "target (P99)"]  # fmt: skip
    row = [
        str(result.workers),
        str(result.count),
        f"{result.median_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f"{result.max_ms:.1f}",
        f"{result.over_target}",
        f"{result.body_bytes:,}",
        f"< {TARGET_SCRAPE_MS:.0f} ms: {verdict(result.met)}",
    ]
    traffic = ", ".join(f"{r.path} {r.requests:,} requests" for r in result.traffic)
    return "\n\n".join(
        [
            f"## 3. /metrics scrape time, {result.workers} workers under load",
            numbers(header, [row]),
            f"Traffic before the scrapes: {traffic}.",
        ]
    )


def render_matrix(results: list[WrkResult]) -> str:
    """Benchmark 4: every style at every number of connections."""
    rows = [
        [style_of(r), str(r.connections), f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}",
         r.describe_errors()]
        for r in results
    ]  # fmt: skip
    return "\n\n".join(
        [
            "## 4. Handler styles: POST /classify, 1 worker on 1 core",
            numbers(["style", "connections", "req/s", "P50 ms", "P90 ms", "P99 ms", "errors"], rows),
        ]
    )


def render_runtimes(comparisons: list[RuntimeComparison]) -> str:
    """Benchmark 5: each style and number of connections, scikit-learn beside ONNX Runtime, with the ratios."""
    rows = [
        [c.style, str(c.connections), f"{c.sklearn.rps:,.0f}", f"{c.onnx.rps:,.0f}", f"{c.rps_ratio:.2f}x",
         f"{c.sklearn.p50_ms:.2f}", f"{c.onnx.p50_ms:.2f}", f"{c.p50_ratio:.2f}x", f"{c.sklearn.p99_ms:.2f}",
         f"{c.onnx.p99_ms:.2f}", c.onnx.describe_errors()]
        for c in comparisons
    ]  # fmt: skip
    header = ["style", "connections", "req/s sklearn", "req/s onnx", "onnx/sklearn req/s", "P50 ms sklearn",
              "P50 ms onnx", "onnx/sklearn P50", "P99 ms sklearn", "P99 ms onnx", "errors (onnx)"]  # fmt: skip
    return "\n\n".join(
        [
            "## 5. Model runtimes: POST /classify, 1 worker on 1 core, ONNX Runtime beside scikit-learn",
            numbers(header, rows),
            "The scikit-learn figures are the matrix's points of the same style and connections (benchmark 4); "
            "the ONNX ones ran the same knobs with `LAB_MODEL_RUNTIME=onnx`. A reference, with no target: above "
            "1x in req/s (below 1x in P50), ONNX Runtime serves more (answers faster).",
        ]
    )


def render(report: Report) -> str:
    """The whole report in Markdown."""
    sections = [render_header(report)]
    if report.serving_path:
        metric_us = report.instrumentation.metric_us_per_request if report.instrumentation else None
        alone = [(r.label, r) for r in [*report.matrix, *(c.onnx for c in report.runtimes)] if r.connections == 1]
        sections.append(render_serving_path(report.serving_path, metric_us, report.chart, alone))
    if report.instrumentation:
        sections.append(render_instrumentation(report.instrumentation))
    if report.batching:
        sections.append(render_batching(report.batching))
    if report.scrape:
        sections.append(render_scrape(report.scrape))
    if report.matrix:
        sections.append(render_matrix(report.matrix))
    if report.runtimes:
        sections.append(render_runtimes(report.runtimes))
    if report.warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in report.warnings))
    commands = "\n".join(r.command for r in report.all_runs())
    sections.append(
        f"## wrk command lines (measured runs; each warm-up ran the same line with its own -d)\n\n```\n{commands}\n```"
    )
    return "\n\n".join(sections) + "\n"
