"""One configuration of the API measured, as `make tune` and `make capacity-check` measure it.

The lab comes up with the configuration (a compose override, or a native API's environment). Two short probes
come first: many users without pause (the saturation rate), then, once the API has answered what they left
queued, one user alone (the service time). They place the breaking-point finder's steps around the point's
capacity (users in steps until P99 passes the SLO or 1% fail), whose last step that held is the point's figure,
and they fit the capacity model (experiments/capacity.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.capacity import Replica
from experiments.collect import collect
from experiments.report import build_report
from experiments.run import Plan, breaking_point_summary, lab_for, run_load, wait_for_lab
from lab.errors import LabError
from lab.paths import MODEL_DIR
from lab.polling import wait_for
from lab.redis import running_redis
from lab.scenarios import api_service, scenario_file
from lab.stack import Lab
from model_api.vocabulary import BREAKING_POINT, LOAD_GENERATOR_SATURATED, MODEL_ROUTES_REGEX, SLO_MS

WAIT_MAX = 2.0  # the lab's users: a wait of 0.01 s to this between requests (experiments.run.Plan's default)
PROBE_USERS = 128  # enough to saturate a thread pool of 80 with some queued
PROBE_SECONDS = 5.0


# --- what a configuration is


@dataclass(frozen=True)
class Config:
    """The API's knobs that tune turns (docs/configuration.md); everything else comes from the scenario."""

    workers: int = 1
    handler: str = "sync"
    threads: int = 40
    batching: bool = False
    batch_max_size: int = 64
    batch_max_wait_ms: float = 2.0
    runtime: str = "sklearn"
    cache: str = "off"

    def canonical(self) -> Config:
        """The same configuration with the knobs it does not use set to their defaults, so that two that serve
        alike are measured once: batch size and wait mean nothing without batching."""
        if self.batching:
            return self
        default = Config()
        return dataclasses.replace(
            self, batch_max_size=default.batch_max_size, batch_max_wait_ms=default.batch_max_wait_ms
        )

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self.canonical()), sort_keys=True)

    def environment(self) -> dict[str, str]:
        """The API's environment for this configuration, as compose.yaml names it."""
        c = self.canonical()
        return {
            "WEB_CONCURRENCY": str(c.workers),
            "LAB_HANDLER_STYLE": c.handler,
            "LAB_THREADPOOL_SIZE": str(c.threads),
            "LAB_BATCHING": "true" if c.batching else "false",
            "LAB_BATCH_MAX_SIZE": str(c.batch_max_size),
            "LAB_BATCH_MAX_WAIT_MS": f"{c.batch_max_wait_ms:g}",
            "LAB_MODEL_RUNTIME": c.runtime,
            "LAB_CACHE": c.cache,
        }

    def label(self) -> str:
        """Short, for a chart or a progress line: '2 workers, sync x40, onnx, batch 64/2ms, cache local'."""
        c = self.canonical()
        parts = [
            f"{c.workers} worker{'s' if c.workers > 1 else ''}",
            f"sync x{c.threads}" if c.handler == "sync" else c.handler,
            c.runtime,
            f"batch {c.batch_max_size}/{c.batch_max_wait_ms:g}ms" if c.batching else "unbatched",
        ]
        return ", ".join([*parts, *([f"cache {c.cache}"] if c.cache != "off" else [])])

    @classmethod
    def of_scenario(cls, scenario: str | None) -> Config:
        """The configuration the scenario (compose.yaml and .env without one) runs: where the search starts."""
        service = api_service(scenario)
        env = service.environment
        default = cls()
        return cls(
            workers=service.workers,
            handler=env.get("LAB_HANDLER_STYLE", default.handler),
            threads=int(env.get("LAB_THREADPOOL_SIZE", default.threads)),
            batching=env.get("LAB_BATCHING", "false").lower() in {"1", "true", "yes", "on"},
            batch_max_size=int(env.get("LAB_BATCH_MAX_SIZE", default.batch_max_size)),
            batch_max_wait_ms=float(env.get("LAB_BATCH_MAX_WAIT_MS", default.batch_max_wait_ms)),
            runtime=env.get("LAB_MODEL_RUNTIME", default.runtime),
            cache=env.get("LAB_CACHE", default.cache),
        )


# --- measuring one


@dataclass
class Point:
    """One configuration measured: its held load, what it cost, and the fit for the capacity model."""

    config: Config
    held_rps: float  # the last step that held the SLO (0: none did)
    held_p99_ms: float | None
    result: str  # the finder's sentence
    saturation_rps: float
    service_ms: float
    service_quantiles_ms: list[list[float]]  # (probability, ms) of one user's latency
    peak_cores: float | None  # the API's CPU at its busiest
    cpu_per_request_ms: float | None
    memory_bytes: float | None  # the workers' resident memory at its largest
    container_memory_bytes: float | None  # compose only: the container's working set
    cpus: float
    verdict: str | None
    seconds: float  # how long the measurement took
    measured_at: float
    replicas: int = 1

    @property
    def load_generator_limited(self) -> bool:
        return self.verdict == LOAD_GENERATOR_SATURATED

    def replica(self, slo_ms: float) -> Replica:
        return Replica(
            service_seconds=self.service_ms / 1000,
            service_quantiles=tuple((p, ms / 1000) for p, ms in self.service_quantiles_ms),
            saturation_rps=self.saturation_rps,
            cpu_per_request=(self.cpu_per_request_ms or 0) / 1000,
            cpus=self.cpus,
            slo_seconds=slo_ms / 1000,
        )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "label": self.config.label()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Point:
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**{**fields, "config": Config(**data["config"])})


def aggregated(stats: dict[str, Any]) -> dict[str, Any]:
    """Locust's row for every request together."""
    return next(row for row in stats["stats"] if row["name"] == "Aggregated")


def probe(lab: Lab, users: int, seconds: float, slo_ms: float) -> tuple[float, dict[str, Any]]:
    """`users` sending without pause for `seconds` once spawned: their requests per second, and Locust's row of
    every request in that window's run (its latency figures cover the whole probe)."""
    lab.start_swarm(user_count=users, spawn_rate=users, wait_max=0.01, slo_ms=slo_ms)
    try:
        wait_for(lambda: lab.locust_stats()["state"] == "running", 60, f"{users} probe users to spawn", 0.2)
        first, since = aggregated(lab.locust_stats())["num_requests"], time.monotonic()
        wait_for(lambda: time.monotonic() - since >= seconds, seconds + 10, "the probe's window", 0.2)
        row, until = aggregated(lab.locust_stats()), time.monotonic()
    finally:
        lab.stop_swarm()
    return (row["num_requests"] - first) / (until - since), row


IN_FLIGHT = f'lab_http_requests_in_flight{{route=~"{MODEL_ROUTES_REGEX}"}}'


def drain(lab: Lab, since: float) -> None:
    """Until the API has answered every request the saturation probe left queued (Locust stops its users, not
    the requests they sent): seconds of backlog would break the next step the finder takes."""

    def drained() -> bool:
        scraped = lab.value(f"min(timestamp({IN_FLIGHT}))")
        return scraped is not None and scraped > since and lab.value(f"sum({IN_FLIGHT})") == 0

    wait_for(drained, 180, "the API to answer the requests the probe left queued", 1)


def service_quantiles(row: dict[str, Any]) -> list[list[float]]:
    """(probability, ms) of a Locust row's latency: its minimum, median, P95, P99 and maximum, non-decreasing."""
    points = [
        [0.0, row["min_response_time"]], [0.5, row["median_response_time"]],
        [0.95, row["response_time_percentile_0.95"]], [0.99, row["response_time_percentile_0.99"]],
        [1.0, row["max_response_time"]],
    ]  # fmt: skip
    for i in range(1, len(points)):
        points[i][1] = max(points[i][1], points[i - 1][1])
    return points


def finder_plan(saturation_rps: float, service_ms: float, slo_ms: float, step_seconds: float) -> Plan:
    """Breaking-point steps placed around this point's capacity. U users send the saturation rate with the lab's
    waits and a queue of half the SLO each (where a closed loop's P99 nears the SLO): the steps start at a
    quarter of U, which any point holds unless its load generator cannot send it, and add 15% of U, so a point
    breaks in 5 to 7 steps."""
    think = (0.01 + WAIT_MAX) / 2 + service_ms / 1000 + slo_ms / 2000
    capacity_users = max(4.0, saturation_rps * think)
    start, step = max(1, round(0.25 * capacity_users)), max(1, round(0.15 * capacity_users))
    return Plan(
        start_users=start, step_users=step, step_seconds=step_seconds, max_users=start + 14 * step,
        spawn_rate=min(200.0, max(BREAKING_POINT["spawn_rate"], 2.0 * step, start / 2)), slo_ms=slo_ms,
        wait_max=WAIT_MAX,
    )  # fmt: skip


@contextmanager
def redis_for(config: Config, native: bool, workdir: Path) -> Iterator[dict[str, str]]:
    """A native Redis when the configuration caches in one (compose starts the scenario's): its URL to set."""
    if config.cache != "redis" or not native:
        yield {}
        return
    with running_redis(workdir) as redis:
        yield {"LAB_REDIS_URL": redis.url}


def say(message: str) -> None:
    print(f"[tune] {message}", flush=True)


def measure(
    config: Config,
    scenario: str | None,
    native: bool,
    slo_ms: float,
    step_seconds: float,
    replicas: int = 1,
    model_dir: Path = MODEL_DIR,
) -> Point:
    """One configuration through the probes and the breaking-point finder (a native run serves `model_dir`)."""
    began = time.monotonic()
    label = config.label()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tune-")))
        environment = {**config.environment(), **stack.enter_context(redis_for(config, native, workdir))}
        lab = stack.enter_context(lab_for(scenario, native, workdir, model_dir, environment, replicas))
        wait_for_lab(lab, label)
        saturation, _ = probe(lab, PROBE_USERS, PROBE_SECONDS, slo_ms)
        drain(lab, time.time())
        _, alone = probe(lab, 1, PROBE_SECONDS, slo_ms)
        service_ms = float(alone["avg_response_time"])
        say(f"  one user alone: {service_ms:.1f} ms a request; {PROBE_USERS} users without pause: "
            f"{saturation:.0f} req/s")  # fmt: skip
        plan = finder_plan(saturation, service_ms, slo_ms, step_seconds)
        started, ended = run_load(lab, label, plan, progress_every=max(5.0, step_seconds))
        summary = breaking_point_summary(lab)
        if summary and not summary.get("last_held") and plan.start_users > 1:
            say(f"  the first step ({plan.start_users} users) broke the SLO: again from a quarter of it")
            plan = dataclasses.replace(
                plan, start_users=max(1, plan.start_users // 4), step_users=max(1, plan.step_users // 4)
            )
            (lab.reports / "run_breaking_point.json").unlink(missing_ok=True)  # the finder writes it anew
            _, ended = run_load(lab, label, plan, progress_every=max(5.0, step_seconds))
            summary = breaking_point_summary(lab)
        report = build_report(scenario or "default", "native" if native else "compose",
                              collect(lab, started - 5, ended + 5), summary)  # fmt: skip
    held = report.held() or {}
    peaks = report.peaks
    cpus = peaks.get("cpu_limit") or api_service(scenario).cpus  # each replica's
    # the busiest replica's share of its limit, for every replica: the balancer shares the load evenly
    cores = peaks["cpu_utilization"] * cpus * replicas if peaks.get("cpu_utilization") is not None else None
    served = peaks.get("rps_server") or saturation
    # Many users without pause can serve less than the finder's steps did (forty threads fighting over one GIL
    # waste some of it): the model wants the most the replica completed.
    saturation = max([saturation, *(float(step["rps"]) for step in report.measured_steps())])
    return Point(
        config=config, held_rps=float(held.get("rps") or 0), held_p99_ms=held.get("p99_ms"),
        result=(summary or {}).get("result", "no summary from the finder"), saturation_rps=saturation,
        service_ms=service_ms, service_quantiles_ms=service_quantiles(alone),
        peak_cores=cores, cpu_per_request_ms=cores / served * 1000 if cores and served else None,
        memory_bytes=peaks.get("workers_rss_bytes"),
        container_memory_bytes=None if native else peaks.get("memory_bytes"),
        cpus=cpus, verdict=report.verdict, seconds=time.monotonic() - began, measured_at=time.time(),
        replicas=replicas,
    )  # fmt: skip


def measurement_options(parser: argparse.ArgumentParser, out: Path) -> None:
    """What every command that measures points takes: the workload, where the report goes, the SLO, the steps."""
    parser.add_argument("--scenario", default=None, help="the workload (scenarios/<name>.yaml); else .env's")
    parser.add_argument("--out", type=Path, default=out, help="where the report goes (%(default)s)")
    parser.add_argument("--slo-ms", type=float, default=SLO_MS, help="a step breaks when P99 exceeds it")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="seconds the finder holds each step")


def check_measurement_options(args: argparse.Namespace) -> None:
    """LabError naming what is wrong with those options: a scenario that does not exist, an SLO or a step that is
    not positive."""
    if args.slo_ms <= 0 or args.step_seconds <= 0:
        raise LabError("--slo-ms and --step-seconds must be positive")
    if args.scenario:
        scenario_file(args.scenario)
