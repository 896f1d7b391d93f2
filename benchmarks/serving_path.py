"""Benchmark 0, the serving path: POST /classify on one pinned core at 64 connections, every server side by side
with the framework's ceiling (the same gunicorn and uvicorn worker serving a bare route, benchmarks/ceiling.py),
and the targets judged as ratios from this one run.

Most rows are points the other benchmarks measure anyway (the matrix's async points are the lab's unbatched and
batched scikit-learn, benchmark 5's are ONNX's); this module measures the rest: the ceiling, /healthz, batched
scikit-learn without metrics, BentoML's adaptive batching on the same model, and what one Locust process of
the lab's users sends against the ceiling.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import locust_bench
from benchmarks.handler_styles import STYLES, label
from benchmarks.harness import CLIENT_CORE, REQUEST, SERVER_CORE, Bench, check_endpoint, progress
from benchmarks.instrumentation import InstrumentationResult
from benchmarks.model_runtimes import RuntimeComparison
from benchmarks.scrape import TARGET_SCRAPE_MS, ScrapeResult
from benchmarks.wrk import Wrk, WrkResult, write_lua
from lab.api import RunningApi
from lab.bentoml_service import MODEL_SERVICE, classify_body, running_bentoml
from lab.errors import LabError
from lab.markdown import table
from lab.paths import BIN, REPO
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, pinned, stop
from model_api.data import COURSE_APPLICANT
from model_api.vocabulary import LOAD_GENERATOR_SATURATED

CONNECTIONS = 64
TARGET_P99_MS = 150.0  # every target holds only with P99 under this and no errors at CONNECTIONS
METRICS_REPEATS = 2  # batched scikit-learn with metrics on and off, alternating, each this many times
LOCUST_USERS = 64
LOCUST_SECONDS = 10
# One BentoML worker with batches up to the lab's LAB_BATCH_MAX_SIZE (services/bentoml: its defaults, spelled out).
BENTOML_ARGUMENTS = {"workers": 1, "max_batch_size": 64}
LOCUST_TARGET_RATIO = 1.5  # one Locust process must send this much more than the best single-core API figure

CEILING = "ceiling: bare Starlette route, same gunicorn + uvicorn worker"
HEALTHZ = "the lab's API, GET /healthz (no body, no model)"
SKLEARN_UNBATCHED = "the lab's API, unbatched scikit-learn"
SKLEARN_BATCHED = "the lab's API, batched scikit-learn"
ONNX_UNBATCHED = "the lab's API, unbatched ONNX"
ONNX_BATCHED = "the lab's API, batched ONNX"
SKLEARN_BATCHED_NO_METRICS = "the lab's API, batched scikit-learn, metrics off"
BENTOML = "BentoML, adaptive batching, scikit-learn"


@dataclass
class Row:
    """One server in the table: its wrk point (None when it could not run, with the reason)."""

    server: str
    result: WrkResult | None
    missing: str = ""


@dataclass
class Target:
    """One target of the issue, as a ratio measured in this run."""

    name: str
    measured: float | None
    target: float
    moonshot: float | None = None
    at_most: bool = False  # a cost: met when the measured figure is at most the target
    unit: str = "x"  # x: a ratio; %: a share, shown in percent; ms: a time
    otherwise: str = ""  # what the lab does where the target is missed, when the issue names an alternative
    conditions: list[str] = field(default_factory=list)  # why a ratio that clears the bar still misses

    @property
    def met(self) -> bool:
        if self.measured is None or self.conditions:
            return False
        return self.measured <= self.target if self.at_most else self.measured >= self.target

    def show(self, value: float) -> str:
        return {"x": f"{value:.2f}x", "%": f"{value:.1%}", "ms": f"{value:.0f} ms"}[self.unit]


@dataclass
class ServingPathResult:
    rows: list[Row]
    locust_rps: float | None = None
    locust_cpu_pct: float | None = None
    locust_missing: str = ""
    # batched scikit-learn's runs with metrics "on" and "off", alternating: the metrics-off row is the off runs' median
    metrics_runs: dict[str, list[float]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)

    def row(self, server: str) -> Row:
        return next(r for r in self.rows if r.server == server)

    def rps(self, server: str) -> float | None:
        result = self.row(server).result
        return result.rps if result else None

    def share(self, server: str) -> float | None:
        """This server's requests per second as a share of the ceiling's."""
        rps, ceiling = self.rps(server), self.rps(CEILING)
        return rps / ceiling if rps is not None and ceiling else None


@contextmanager
def running_ceiling(bench: Bench) -> Iterator[RunningApi]:
    """benchmarks/ceiling.py under gunicorn with the API's worker class, one worker on the server core."""
    port = free_port()
    log = bench.workdir / f"ceiling-{port}.log"
    command = [str(BIN / "gunicorn"), "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1"]
    command += ["--bind", f"127.0.0.1:{port}", "benchmarks.ceiling:app"]
    process = subprocess.Popen(
        pinned(command, SERVER_CORE), cwd=REPO, env=clean_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    api = RunningApi(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(lambda: api.alive() and "Application startup complete" in api.output(), 30, "the ceiling server")
        check_endpoint(f"{api.url}/classify", COURSE_APPLICANT)
        yield api
    finally:
        stop(process)


def _point(bench: Bench, name: str, start: Callable[[], object], path: str = "/classify") -> Row:
    progress(f"serving path: {name}")
    with start() as api:  # type: ignore[attr-defined]
        if path == "/classify":
            check_endpoint(f"{api.url}{path}", COURSE_APPLICANT)
        return Row(name, bench.measure(name, api, path, CONNECTIONS, CLIENT_CORE))


def _bentoml_row(bench: Bench) -> Row:
    """BentoML's batchable model service (CreditModel, without the course-shaped API in front of it) on the same
    model and core, with its adaptive batching; its body is a list of one applicant, so its wrk script is its own."""
    script = write_lua(bench.workdir, "bentoml-applicant", classify_body(COURSE_APPLICANT))
    on_bentoml = replace(bench, wrk=Wrk(bench.wrk.env, {"/classify": script}))
    try:
        with running_bentoml(
            bench.workdir, bench.options.model_dir, SERVER_CORE, MODEL_SERVICE, **BENTOML_ARGUMENTS
        ) as service:
            progress(f"serving path: {BENTOML}")
            return Row(BENTOML, on_bentoml.measure(BENTOML, service, "/classify", CONNECTIONS, CLIENT_CORE))
    except LabError as error:
        return Row(BENTOML, None, str(error).splitlines()[0])


def run(bench: Bench, matrix: list[WrkResult], runtimes: list[RuntimeComparison]) -> ServingPathResult:
    """The points of this benchmark, beside those the matrix and benchmark 5 measured, in one table."""
    with running_ceiling(bench) as ceiling_api:
        progress(f"serving path: {CEILING}")
        ceiling = Row(CEILING, bench.measure(CEILING, ceiling_api, "/classify", CONNECTIONS, CLIENT_CORE))
        locust = _locust_against(bench, ceiling_api.url)
    healthz = _point(bench, HEALTHZ, lambda: bench.api(1, STYLES["async"], core=SERVER_CORE), "/healthz")
    metered, unmetered = _metrics_on_and_off(bench)
    bentoml = _bentoml_row(bench)

    def from_matrix(style: str) -> WrkResult | None:
        return next((r for r in matrix if r.label == label(style, CONNECTIONS)), None)

    def onnx(style: str) -> WrkResult | None:
        return next((c.onnx for c in runtimes if c.style == style and c.connections == CONNECTIONS), None)

    rows = [
        ceiling,
        healthz,
        Row(SKLEARN_UNBATCHED, from_matrix("async")),
        Row(SKLEARN_BATCHED, from_matrix("async+batching")),
        Row(ONNX_UNBATCHED, onnx("async")),
        Row(ONNX_BATCHED, onnx("async+batching")),
        unmetered,
        bentoml,
    ]
    # its targets are set once benchmarks 1 and 3 have run
    return ServingPathResult(rows=rows, metrics_runs=metered, **locust)


def _metrics_on_and_off(bench: Bench) -> tuple[dict[str, list[float]], Row]:
    """Batched scikit-learn with metrics on and off, alternating (on, off, on, off): one point varies by 15-30%
    from run to run here, more than metrics cost, so the off row is the median of its runs, and the on runs are
    kept to compare with (benchmark 1 judges the metrics' cost on their CPU instead)."""
    on_rps, off = [], []
    for repeat in range(METRICS_REPEATS):
        for metrics in ("true", "false"):
            knobs = {**STYLES["async+batching"], "LAB_METRICS": metrics}
            name = f"{SKLEARN_BATCHED} (metrics {'on' if metrics == 'true' else 'off'} #{repeat + 1})"
            row = _point(bench, name, lambda knobs=knobs: bench.api(1, knobs, core=SERVER_CORE))
            if row.result is not None and metrics == "true":
                on_rps.append(row.result.rps)
            elif row.result is not None:
                off.append(row.result)
    median = sorted(off, key=lambda r: r.rps)[(len(off) - 1) // 2] if off else None
    return {"on": on_rps, "off": [r.rps for r in off]}, Row(SKLEARN_BATCHED_NO_METRICS, median)


def _locust_against(bench: Bench, url: str) -> dict[str, object]:
    """One Locust process of the lab's own users (FastHttpUser, no wait) against the ceiling, which outruns it."""
    progress(f"serving path: one Locust process, {LOCUST_USERS} credit users with no wait, against the ceiling")
    try:
        point = locust_bench.measure_lab_users(url, bench.workdir, LOCUST_SECONDS, LOCUST_USERS)
    except LabError as error:
        return {"locust_missing": str(error).splitlines()[0]}
    return {"locust_rps": point.rps, "locust_cpu_pct": point.cpu_percent}


def _conditions(result: WrkResult | None) -> list[str]:
    if result is None:
        return ["not measured"]
    conditions = []
    if result.p99_ms >= TARGET_P99_MS:
        conditions.append(f"P99 {result.p99_ms:.0f} ms")
    if result.errors:
        conditions.append(f"{result.describe_errors()} errors")
    return conditions


def targets(
    result: ServingPathResult,
    instrumentation: InstrumentationResult | None = None,
    scrape: ScrapeResult | None = None,
) -> list[Target]:
    """The issue's targets, each a ratio of this run's figures (the metrics' cost from benchmark 1, the scrape's
    time from benchmark 3)."""
    batched, bentoml = result.rps(SKLEARN_BATCHED), result.rps(BENTOML)
    not_the_api_serving = (CEILING, HEALTHZ, BENTOML)  # the best figure of the lab's API serving the model
    api_best = max(
        (r.result.rps for r in result.rows if r.result and r.server not in not_the_api_serving), default=None
    )
    found = [
        Target(
            "batched scikit-learn, share of the ceiling",
            result.share(SKLEARN_BATCHED),
            0.2,
            0.3,
            conditions=_conditions(result.row(SKLEARN_BATCHED).result),
        ),
        Target(
            "unbatched ONNX, share of the ceiling",
            result.share(ONNX_UNBATCHED),
            0.3,
            0.4,
            conditions=_conditions(result.row(ONNX_UNBATCHED).result),
        ),
        Target(
            "batched scikit-learn over BentoML's adaptive batching",
            batched / bentoml if batched and bentoml else None,
            6.0,
            conditions=_conditions(result.row(SKLEARN_BATCHED).result) if bentoml else ["BentoML not measured"],
        ),
        Target(
            "one Locust process over the best single-core API figure",
            result.locust_rps / api_best if result.locust_rps and api_best else None,
            LOCUST_TARGET_RATIO,
            otherwise=f"the diagnosis names {LOAD_GENERATOR_SATURATED} when a Locust worker's CPU is the limit: "
            "add workers (LOCUST_WORKERS)",
        ),
    ]
    if instrumentation is not None:  # the RPS a CPU-bound worker loses: the metric work's share of its CPU
        share = instrumentation.metric_share_pct / 100
        found.append(
            Target("metric work, share of a request's server CPU (benchmark 1)", share, 0.03, at_most=True, unit="%")
        )
    if scrape is not None:
        found.append(
            Target(
                f"/metrics P99 with {scrape.workers} workers under load, ms (benchmark 3)",
                scrape.p99_ms,
                TARGET_SCRAPE_MS,
                at_most=True,
                unit="ms",
            )
        )
    return found


# What the API's stages are called in the breakdown: the names for them (parse and validate are one stage,
# timed from the request's arrival to the handler; the waits are one column).
BREAKDOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "parse + validate": ("validation",),
    "waits (thread, batch, CPU)": ("threadpool_wait", "batch_queue", "cpu_wait"),
    "downstream": ("downstream",),
    "model": ("inference", "cpu_work", "allocation"),
    "cache": ("cache",),
    "encode": ("serialization",),
}


def breakdown(stages_ms: dict[str, float]) -> dict[str, float]:
    """A request's mean milliseconds by the issue's stage names, and the rest: routing, middleware, metrics and
    the time a ready request waits for the event loop, which no stage times."""
    columns = {name: sum(stages_ms.get(stage, 0.0) for stage in stages) for name, stages in BREAKDOWN_COLUMNS.items()}
    columns["outside the stages"] = max(stages_ms[REQUEST] - sum(columns.values()), 0.0)
    return columns


def render_serving_path(
    result: ServingPathResult, metric_us: float | None, chart: str | None, alone: Sequence[tuple[str, WrkResult]] = ()
) -> str:
    """The table of servers, the targets, where each request's time went (loaded, and `alone`: points at one
    connection, where a request's stages are its own work), and the chart."""
    rows = []
    for row in result.rows:
        r, share = row.result, result.share(row.server)
        if r is None:
            rows.append([row.server, "–", "–", "–", "–", "–", row.missing or "not measured"])
            continue
        cpu = "?" if r.server_cpu_us_per_request is None else f"{r.server_cpu_us_per_request:,.0f}"
        rows.append(
            [row.server, f"{r.rps:,.0f}", f"{share:.3f}" if share is not None else "–", f"{r.p50_ms:.1f}",
             f"{r.p99_ms:.1f}", cpu, r.describe_errors()]
        )  # fmt: skip
    header = ["server, POST /classify", "req/s", "share of the ceiling", "P50 ms", "P99 ms", "server CPU us/req"]
    lines = [
        f"## 0. The serving path: {CONNECTIONS} connections, 1 worker on 1 core, against the framework's ceiling",
        "",
        "The ceiling is the same gunicorn and uvicorn worker serving a bare Starlette route that reads the JSON body "
        "and answers a constant (benchmarks/ceiling.py): what one worker can serve at all. The other rows are read "
        "as shares of it. Unbatched and batched scikit-learn are the matrix's async points (benchmark 4), ONNX "
        "benchmark 5's.",
        "",
        table([*header, "errors"], rows, align="lrrrrrl"),
        "",
        "### Targets (ratios of this run; each with P99 under "
        f"{TARGET_P99_MS:.0f} ms and no errors at {CONNECTIONS} connections)",
        "",
        table(["target", "measured", "target", "moonshot", ""], [_target_row(t) for t in result.targets]),
        "",
    ]
    runs = result.metrics_runs
    if runs.get("on") and runs.get("off"):
        lines.append(
            f"Batched scikit-learn with metrics on and off, alternating, {len(runs['on'])} runs each: on "
            + ", ".join(f"{rps:,.0f}" for rps in runs["on"])
            + " req/s; off "
            + ", ".join(f"{rps:,.0f}" for rps in runs["off"])
            + " req/s (the metrics-off row is the median off run). One point varies by 15-30% from run to run "
            "here, more than the metrics cost: benchmark 1 judges that cost on the server's CPU instead.\n"
        )
    if result.locust_rps is not None:
        lines.append(
            f"One Locust process of the lab's credit users (FastHttpUser, no wait, {LOCUST_USERS} users, pinned to "
            f"core {CLIENT_CORE}) sent {result.locust_rps:,.0f} req/s to the ceiling at {result.locust_cpu_pct:.0f}% "
            "of its core."
        )
    else:
        lines.append(f"One Locust process: not measured ({result.locust_missing}).")
    loaded = [(row.server, row.result) for row in result.rows if row.result]
    lines += _breakdown_section(f"{CONNECTIONS} connections: where a loaded server's time goes", loaded, metric_us)
    lines += _breakdown_section("1 connection: what one request costs, stage by stage", alone, None)
    if chart:
        lines += ["", f"![Requests per second as a share of the ceiling]({chart})"]
    return "\n".join(lines)


def _breakdown_section(title: str, points: Sequence[tuple[str, WrkResult]], metric_us: float | None) -> list[str]:
    names = [*BREAKDOWN_COLUMNS, "outside the stages"]
    rows = []
    for server, stages_ms in ((server, r.stages_ms) for server, r in points if r.stages_ms):
        parts = breakdown(stages_ms)
        rows.append([server, f"{stages_ms[REQUEST]:.3f}", *(f"{parts[name]:.3f}" for name in names)])
    if not rows:
        return []
    note = (
        "Milliseconds per request from the API's own histograms over the run: the whole request from its "
        "arrival in the app to its answer, and its stages. Parse + validate runs from the arrival to the handler "
        "(the body read, JSON parsed, the fields checked, the route found). Outside the stages is routing, "
        "middleware, metrics and, under load, the other requests' turns on the event loop."
    )
    if metric_us:
        note += f" The metric work of a request, timed in-process (benchmark 1), is {metric_us:.0f} us."
    return [
        "",
        f"### {title}",
        "",
        note,
        "",
        table(["server", "whole request", *names], rows, align="l" + "r" * (len(names) + 1)),
    ]


def _target_row(target: Target) -> list[str]:
    measured = "–" if target.measured is None else target.show(target.measured)
    bar = ("<= " if target.at_most else ">= ") + target.show(target.target)
    moonshot = target.show(target.moonshot) if target.moonshot else "–"
    verdict = (
        "met" if target.met else "**missed**" + (f" ({', '.join(target.conditions)})" if target.conditions else "")
    )
    return [target.name, measured, bar, moonshot, verdict]


def chart(result: ServingPathResult, path: Path) -> Path | None:
    """A bar per server: its requests per second as a share of the ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [(row.server, result.share(row.server)) for row in result.rows if row.result]
    if len(measured) < 2:
        return None
    names, shares = zip(*measured, strict=True)
    figure, axes = plt.subplots(figsize=(9, 0.5 * len(names) + 1.2))
    bars = axes.barh(range(len(names)), shares, color=["#888888", *["#1f77b4"] * (len(names) - 1)])
    short = [name.replace("the lab's API, ", "").split(":")[0] for name in names]  # "ceiling", "batched ONNX"...
    axes.set_yticks(range(len(names)), short)
    axes.invert_yaxis()
    axes.set_xlabel("requests per second, as a share of the ceiling")
    axes.set_title(f"POST /classify, {CONNECTIONS} connections, 1 worker on 1 core", fontsize=10)
    for bar, share in zip(bars, shares, strict=True):
        axes.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {share:.2f}", va="center", fontsize=8)
    axes.set_xlim(0, 1.1)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
