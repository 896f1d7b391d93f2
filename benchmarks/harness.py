"""What every benchmark needs: its options, the tools and models, a running API, and one measured wrk point
(warm-up, measurement, the server's CPU per request, a drained server before the next)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from benchmarks.wrk import Wrk, WrkResult
from lab.api import RunningApi, running_api
from lab.errors import LabError
from lab.exposition import Sample, parse, total
from lab.paths import BIN
from lab.polling import wait_for
from lab.processes import clean_env, find_tool

SERVER_CORE = 1  # pinned runs: the one gunicorn worker here...
CLIENT_CORE = 0  # ...and wrk here, so that neither steals the other's CPU
# The API's defaults, spelled out: benchmarks 1 and 3 measure what `make api` serves.
DEFAULT_KNOBS = {"LAB_HANDLER_STYLE": "sync", "LAB_BATCHING": "false"}
DRAIN_TIMEOUT = 60.0
IDLE_INTERVAL = 0.25  # how often to sample the server's CPU time while it drains
IDLE_CPU_SHARE = 0.05  # below 5% of one core over an interval, the server is idle

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line per step, with the time since the start, so a long run shows where it is."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


@dataclass
class Options:
    """How long and how often to measure."""

    duration_s: int
    warmup_s: int
    repeats: int
    scrapes: int
    model_dir: Path
    quick: bool


def require_tools() -> None:
    """MissingTool naming the Debian package when wrk (or taskset, for pinning) is not installed."""
    find_tool("wrk", "wrk")
    find_tool("taskset", "util-linux")


def ensure_artifacts(model_dir: Path) -> None:
    """Train the models into `model_dir` if it holds none (what `make train` does)."""
    if (model_dir / "metadata.json").exists():
        return
    progress(f"no trained models in {model_dir}: training them")
    command = [str(BIN / "python"), "-m", "model_api.train", "--out", str(model_dir)]
    if subprocess.run(command, env=clean_env(), check=False).returncode != 0:
        raise LabError(f"training the models into {model_dir} failed (its output is above)")


def check_endpoint(url: str, body: Mapping[str, Any]) -> None:
    """One request before loading an endpoint: a 4xx here would make every wrk number meaningless."""
    response = httpx2.post(url, json=dict(body), timeout=10)
    if response.status_code != 200:
        raise LabError(f"POST {url} answered {response.status_code}: {response.text[:500]}")


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


REQUEST = "request"  # the key of stage_breakdown's whole-request figure


def lab_metrics(api: RunningApi) -> dict[Sample, float] | None:
    """The API's /metrics, parsed; None for a server without them (LAB_METRICS=false, or not the lab's API)."""
    response = httpx2.get(f"{api.url}/metrics", timeout=10)
    if response.status_code != 200:
        return None
    try:
        return parse(response.text)
    except ValueError:  # another server's exposition that prometheus-client cannot read: no breakdown
        return None


def stage_breakdown(
    before: dict[Sample, float] | None, after: dict[Sample, float] | None, route: str
) -> dict[str, float] | None:
    """Milliseconds per request of `route` in each stage between two scrapes, and in the whole request (REQUEST):
    the API's own histograms, so the figures are those of the requests measured and nothing else."""
    if before is None or after is None:
        return None

    def delta(name: str, **labels: str) -> float:
        return total(after, name, route=route, **labels) - total(before, name, route=route, **labels)

    requests = delta("lab_http_request_duration_seconds_count")
    if requests <= 0:
        return None
    stages = {
        dict(labels)["stage"]
        for (name, labels) in after
        if name == "lab_request_stage_duration_seconds_sum" and dict(labels).get("route") == route
    }
    breakdown = {
        stage: delta("lab_request_stage_duration_seconds_sum", stage=stage) / requests * 1e3 for stage in stages
    }
    breakdown[REQUEST] = delta("lab_http_request_duration_seconds_sum") / requests * 1e3
    return dict(sorted(breakdown.items(), key=lambda item: -item[1]))


@dataclass
class Bench:
    """What every benchmark needs: options, a scratch folder for the servers, and wrk."""

    options: Options
    workdir: Path
    wrk: Wrk

    def api(
        self, workers: int, knobs: Mapping[str, str], core: int | None = None
    ) -> AbstractContextManager[RunningApi]:
        """A running API with these workers and knobs."""
        return running_api(self.workdir, self.options.model_dir, workers, core, **knobs)

    def measure(
        self, label: str, api: RunningApi, path: str, connections: int, core: int | None, warmup: bool = True
    ) -> WrkResult:
        """A warm-up run (discarded) with the same settings, then the measured run; the server drains after each,
        so that no run is charged for the requests a previous one left behind."""
        seconds = self.options.duration_s
        if warmup and self.options.warmup_s > 0:
            self.wrk.run(label, api.url, path, connections, self.options.warmup_s, core)
            wait_idle(api)
        cpu_before, metrics_before = api.cpu_seconds(), lab_metrics(api)
        result = self.wrk.run(label, api.url, path, connections, seconds, core)
        drained = wait_idle(api)
        result.stages_ms = stage_breakdown(metrics_before, lab_metrics(api), path)
        # CPU per request is steadier than RPS on a shared VM: time stolen by neighbours slows the run but is not
        # counted as our CPU. The few requests answered after wrk stopped add well under 1% here.
        result.server_cpu_us_per_request = (api.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
        progress(
            f"  {label}: {result.rps:,.0f} req/s, P50 {result.p50_ms:.1f} ms, P99 {result.p99_ms:.1f} ms"
            + (f", {result.errors} errors" if result.errors else "")
            + (f" (server busy {drained:.1f} s after wrk stopped)" if drained > 1.0 else "")
        )
        return result
