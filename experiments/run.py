"""Run a scenario as a measured experiment and write its report.

    python -m experiments.run cpu-bound                 # the compose lab (Docker)
    python -m experiments.run cpu-bound --native        # the same components as processes, without Docker
    make experiment SCENARIO=cpu-bound

Brings the lab up with the scenario's override, runs the breaking-point load shape through the distributed
Locust (users in steps until P99 breaks the SLO), reads the run back from Prometheus, tears the lab down and
writes reports/experiments/<scenario>/: summary.md, report.json and PNG charts. Once the API nears its limit,
py-spy records each step in the background; the report links the flame graph of the last one, the step at the
breaking point (in reports/profiles/; `--no-profile` turns this off).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from experiments.collect import SERIES, RunSeries, collect
from experiments.report import ExperimentReport, broke_the_slo, build_report, write_report
from lab.compose import compose_lab
from lab.errors import LabError
from lab.native import native_lab
from lab.paths import MODEL_DIR, REPO, SCENARIOS_DIR
from lab.polling import wait_for
from lab.profiling import PROFILES_DIR, Profile, record, target_in
from lab.stack import Lab
from model_api.vocabulary import BREAKING_POINT, DIAGNOSIS_LAG_SECONDS, HEALTHY, SLO_MS

LOAD_GENERATOR_SATURATED = "load-generator-saturated"  # the verdict that profiles a Locust worker instead

DEFAULT_OUT = REPO / "reports" / "experiments"
LOCUST_WORKERS = 2


@dataclass
class Plan:
    """The breaking-point shape's settings (lab_locust.shapes.BreakingPointPlan), sent with the swarm."""

    start_users: int = BREAKING_POINT["start_users"]
    step_users: int = BREAKING_POINT["step_users"]
    step_seconds: float = BREAKING_POINT["step_seconds"]
    max_users: int = BREAKING_POINT["max_users"]
    spawn_rate: float = BREAKING_POINT["spawn_rate"]
    slo_ms: float = SLO_MS
    wait_max: float = 2.0  # each user waits 0.01 s to this between requests (lower: more requests per user)

    def form(self) -> dict[str, Any]:
        return {
            "wait_max": self.wait_max,
            "shape_class": "BreakingPointShape",
            "bp_start_users": self.start_users,
            "bp_step_users": self.step_users,
            "bp_step_seconds": self.step_seconds,
            "bp_max_users": self.max_users,
            "bp_spawn_rate": self.spawn_rate,
            "slo_ms": self.slo_ms,
            # the shape sets users and spawn rate; the form still wants values
            "user_count": self.start_users,
            "spawn_rate": self.spawn_rate,
        }

    def longest(self) -> float:
        """The longest the plan can run: every step, each with its ramp, plus a margin."""
        steps = max(1, (self.max_users - self.start_users) // self.step_users + 1)
        return steps * (self.step_seconds + self.step_users / self.spawn_rate + 2) + 60


def say(scenario: str, message: str) -> None:
    print(f"[{scenario}] {message}", flush=True)


def live(lab: Lab) -> dict[str, Any]:
    """What Prometheus sees right now: users, RPS, client P99 (s), CPU against the limit, failures, verdict."""
    names = (("users", "users"), ("rps", "rps_client"), ("p99", "p99_client"), ("cpu", "cpu_utilization"),
             ("failures", "failure_ratio"))  # fmt: skip
    figures: dict[str, Any] = {key: lab.value(SERIES[name][0]) for key, name in names}
    verdict = lab.query("job:lab_diagnosis:verdict")
    figures["verdict"] = verdict[0]["metric"]["verdict"] if verdict else None
    return figures


def now_line(figures: dict[str, Any]) -> str:
    """One line of progress from the live figures."""

    def show(value: float | None, pattern: str) -> str:
        return "–" if value is None or value != value else pattern.format(value)

    return (
        f"users {show(figures['users'], '{:.0f}'):>3}  RPS {show(figures['rps'], '{:.1f}'):>6}  "
        f"P99 {show(figures['p99'] and figures['p99'] * 1000, '{:.0f} ms'):>8}  "
        f"CPU {show(figures['cpu'], '{:.0%}'):>4}  "
        f"verdict {figures['verdict'] or '–'}"
    )


def wait_for_lab(lab: Lab, scenario: str) -> None:
    """Every Locust worker connected, the API scraped: only then does a measurement mean something."""
    wait_for(lambda: lab.value("max(locust_workers)") == LOCUST_WORKERS, 120, "the Locust workers to connect", 0.5)
    wait_for(lambda: lab.value('sum(up{job="model-api"})'), 120, "Prometheus to scrape the API", 0.5)
    wait_for(lambda: lab.value("max(locust_users)") is not None, 60, "Prometheus to scrape Locust", 0.5)
    say(scenario, f"lab ready: Locust {lab.locust_url}, Prometheus {lab.prometheus_url}"
        + (f", Grafana {lab.grafana_url}" if lab.grafana_url else ""))  # fmt: skip


@dataclass
class StepProfiles:
    """The runner's automatic flame graph. py-spy records the first step (nothing is known of it yet: a run may
    break there) and each later step once the live figures show the API near its limit, from when the step's
    users have spawned, for half the step, in the background (the runner keeps polling). The last recording
    that ended while the load ran is kept: the breaking-point shape stops at the end of the step that broke,
    so that is the step at the breaking point. The target is the API, or a Locust worker while the diagnosis
    says the load generator is saturated."""

    lab: Lab
    scenario: str
    plan: Plan
    folder: Path
    kept: Profile | None = None
    problem: str = ""  # why there is no profile, once recording failed
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "profile"))
    _running: Future[Profile] | None = None
    _profiled: int = 0  # the users of the last step recorded

    def near_limit(self, figures: dict[str, Any]) -> bool:
        """Client P99 above half the SLO, failures, the CPU at 80% of its limit, or any verdict but healthy."""
        p99, failures, cpu, verdict = (figures.get(k) for k in ("p99", "failures", "cpu", "verdict"))
        return bool(
            (p99 and p99 * 1000 > self.plan.slo_ms / 2)
            or (failures and failures > 0)
            or (cpu and cpu >= 0.8)
            or (verdict and verdict != HEALTHY)
        )

    def poll(self, users: int, figures: dict[str, Any]) -> None:
        """Keep a recording that has finished; start one when a new step has spawned its users near the limit."""
        self._collect(stopped=None)
        steps = range(self.plan.start_users, self.plan.max_users + 1, self.plan.step_users)
        if self._running or self.problem or users not in steps or users <= self._profiled:
            return
        known = any(figures.get(k) is not None for k in ("p99", "failures", "cpu", "verdict"))
        if known and not self.near_limit(figures):
            return
        which = "locust" if figures.get("verdict") == LOAD_GENERATOR_SATURATED else "api"
        seconds = max(2, int(self.plan.step_seconds / 2))
        self._profiled = users
        try:
            target = target_in(self.lab, which)
        except LabError as error:
            self.problem = str(error)
            return
        say(self.scenario, f"profiling {target.description} for {seconds}s during the step of {users} users")
        self._running = self._pool.submit(
            record, target, seconds, self.folder, self.scenario, f"the step of {users} users"
        )

    def _collect(self, stopped: float | None) -> None:
        if self._running is None or (stopped is None and not self._running.done()):
            return
        future, self._running = self._running, None
        try:
            profile = future.result()
        except LabError as error:
            self.problem = str(error)
            say(self.scenario, f"no profile: {error}")
            return
        if stopped is not None and profile.ended > stopped:  # it outlived the load: part of it is idle
            profile.remove()
            return
        if self.kept:
            self.kept.remove()
        self.kept = profile

    def finish(self, stopped: float) -> Profile | None:
        """The profile kept once the load has stopped at `stopped` (Unix seconds)."""
        self._collect(stopped)
        self._pool.shutdown()
        return self.kept


def run_load(
    lab: Lab, scenario: str, plan: Plan, progress_every: float = 5, profiles: StepProfiles | None = None
) -> tuple[float, float]:
    """Run the breaking-point shape to its end, printing progress (and profiling, if asked); returns the run's
    (start, end) times."""
    started = time.time()
    lab.start_swarm(**plan.form())
    deadline = time.monotonic() + plan.longest()
    printed, figures = 0.0, {}
    while (stats := lab.locust_stats())["state"] not in {"stopped", "ready"}:
        if time.monotonic() > deadline:
            raise LabError(f"the breaking-point run did not stop within {plan.longest():.0f}s")
        if time.monotonic() - printed >= progress_every:
            figures, printed = live(lab), time.monotonic()
            say(scenario, f"{time.time() - started:5.0f}s  {now_line(figures)}")
        if profiles:
            profiles.poll(stats["user_count"], figures)
        time.sleep(1)  # the pace of polling: a step's start is seen within a second
    return started, time.time()


def wait_for_diagnosis(lab: Lab, scenario: str, ended: float) -> float:
    """Until Prometheus has evaluated the diagnosis DIAGNOSIS_LAG_SECONDS after the load stopped, so that the
    report holds the verdicts of the last step: a short step may have none of its own, and a run that broke
    before its traffic settled has its first verdicts only then. Returns the time up to which to
    collect."""
    until = ended + DIAGNOSIS_LAG_SECONDS
    say(scenario, f"waiting for the diagnosis to catch up with the last step (up to {DIAGNOSIS_LAG_SECONDS}s)")

    def caught_up() -> bool:  # the settled-traffic signal is evaluated always, a verdict only with traffic
        latest = lab.value("max(timestamp(job:lab_traffic_settled:bool))")
        return latest is not None and latest >= until

    try:
        wait_for(caught_up, until - time.time() + 30, "the diagnosis to evaluate the last step", interval=1)
    except LabError as error:
        say(scenario, f"{error}; the report has the verdicts evaluated so far")
    return until


def breaking_point_summary(lab: Lab) -> dict[str, Any] | None:
    """The shape's JSON summary (written by the master when the run stops), or None if it never came."""
    path = lab.reports / "run_breaking_point.json"
    try:
        wait_for(path.is_file, 30, f"the breaking-point summary {path}", 0.5)
    except LabError:
        return None
    return json.loads(path.read_text())


@contextmanager
def lab_for(scenario: str, native: bool, workdir: Path, model_dir: Path) -> Iterator[Lab]:
    if native:
        with native_lab(workdir, scenario, locust_workers=LOCUST_WORKERS, model_dir=model_dir) as lab:
            yield lab
    else:
        with compose_lab(f"lab-exp-{scenario}", workdir / "locust", scenario=scenario) as lab:
            yield lab


def run_experiment(
    scenario: str,
    out: Path,
    plan: Plan,
    native: bool = False,
    progress_every: float = 5,
    model_dir: Path = MODEL_DIR,
    profiles: Path | None = PROFILES_DIR,
) -> tuple[ExperimentReport, Path]:
    """Run `scenario` under `plan`; returns the report and the path of its summary. A native run serves the
    models in `model_dir`; the compose lab trains its own into its image. The flame graph of the step at the
    breaking point goes to `profiles` (None: no profile)."""
    mode = "natively (processes on 127.0.0.1)" if native else "on Docker Compose"
    say(scenario, f"starting the lab {mode}")
    with (
        tempfile.TemporaryDirectory(prefix=f"experiment-{scenario}-") as tmp,
        lab_for(scenario, native, Path(tmp), model_dir) as lab,
    ):
        wait_for_lab(lab, scenario)
        say(scenario, f"breaking point: {plan.start_users} users, +{plan.step_users} every {plan.step_seconds:.0f}s, "
            f"until P99 > {plan.slo_ms:.0f} ms or {plan.max_users} users")  # fmt: skip
        profiler = StepProfiles(lab, scenario, plan, profiles) if profiles else None
        started, ended = run_load(lab, scenario, plan, progress_every, profiler)
        profile = profiler.finish(ended) if profiler else None
        if profiler and not profile:
            say(scenario, f"no profile: {profiler.problem or 'the API never came near its limit'}")
        summary = breaking_point_summary(lab)
        say(scenario, f"run over after {ended - started:.0f}s: {summary['result'] if summary else 'no summary'}")
        # A step that broke the SLO was cut short: its verdicts come after it. One that held ran its full time.
        until = wait_for_diagnosis(lab, scenario, ended) if broke_the_slo(summary) else ended + 5
        series: RunSeries = collect(lab, started - 5, until)
        say(scenario, "collected the run from Prometheus; stopping the lab")
    report = build_report(scenario, "native" if native else "compose", series, summary, profile)
    path = write_report(report, out / scenario)
    say(scenario, f"verdict under load: {report.verdict}; report: {path}")
    return report, path


def scenarios() -> list[str]:
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=scenarios(), help="the scenario (scenarios/<name>.yaml)")
    parser.add_argument("--native", action="store_true", help="run the components as processes, without Docker")
    parser.add_argument(
        "--model-dir", type=Path, default=MODEL_DIR, help="the trained models a native run serves (%(default)s)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where report folders go (%(default)s)")
    parser.add_argument(
        "--no-profile", action="store_true", help=f"no flame graph of the breaking step (else in {PROFILES_DIR})"
    )
    defaults = Plan()
    parser.add_argument("--start-users", type=int, default=defaults.start_users, help="users in the first step")
    parser.add_argument("--step-users", type=int, default=defaults.step_users, help="users added per step")
    parser.add_argument("--step-seconds", type=float, default=defaults.step_seconds, help="seconds measured per step")
    parser.add_argument("--max-users", type=int, default=defaults.max_users, help="stop here if the SLO holds")
    parser.add_argument("--slo-ms", type=float, default=defaults.slo_ms, help="a step breaks when P99 exceeds it")
    parser.add_argument(
        "--wait-max", type=float, default=defaults.wait_max, help="longest wait between a user's requests (s)"
    )
    args = parser.parse_args(argv)
    for name in ("start_users", "step_users", "max_users"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.step_seconds <= 0 or args.slo_ms <= 0 or args.wait_max < 0.01:
        parser.error("--step-seconds and --slo-ms must be positive, --wait-max at least 0.01")
    plan = Plan(args.start_users, args.step_users, args.step_seconds, args.max_users, slo_ms=args.slo_ms,
                wait_max=args.wait_max)  # fmt: skip
    try:
        run_experiment(args.scenario, args.out, plan, native=args.native, model_dir=args.model_dir,
                       profiles=None if args.no_profile else PROFILES_DIR)  # fmt: skip
    except (LabError, httpx2.HTTPError) as error:  # a lab that could not start, or stopped answering
        print(f"experiment failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
