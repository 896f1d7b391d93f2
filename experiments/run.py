"""Run a scenario as a measured experiment and write its report.

    python -m experiments.run cpu-bound                 # the compose lab (Docker)
    python -m experiments.run cpu-bound --native        # the same components as processes, without Docker
    make experiment SCENARIO=cpu-bound

Brings the lab up with the scenario's override, runs the breaking-point load shape through the distributed
Locust (users in steps until P99 breaks the SLO), reads the run back from Prometheus, tears the lab down and
writes reports/experiments/<scenario>/: summary.md, report.json and PNG charts. Once measured, the step at the
breaking point runs again under py-spy, and its flame graph goes beside the report (`--no-profile`: not).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from lab.profiling import Profile, record, target_in
from lab.scenarios import api_override, locust_environment
from lab.stack import Lab
from model_api.vocabulary import BREAKING_POINT, DIAGNOSIS_LAG_SECONDS, LOAD_GENERATOR_SATURATED, SLO_MS

PROFILE_SECONDS = 10  # the profiling step: the speedscope file records its first half, the SVG its second

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


def now_line(lab: Lab) -> str:
    """One line of progress: what Prometheus sees right now."""
    figures = {
        key: lab.value(SERIES[name][0])
        for key, name in (("users", "users"), ("rps", "rps_client"), ("p99", "p99_client"), ("cpu", "cpu_utilization"))
    }
    verdict = lab.query("job:lab_diagnosis:verdict")

    def show(value: float | None, pattern: str) -> str:
        return "–" if value is None or value != value else pattern.format(value)

    return (
        f"users {show(figures['users'], '{:.0f}'):>3}  RPS {show(figures['rps'], '{:.1f}'):>6}  "
        f"P99 {show(figures['p99'] and figures['p99'] * 1000, '{:.0f} ms'):>8}  "
        f"CPU {show(figures['cpu'], '{:.0%}'):>4}  "
        f"verdict {verdict[0]['metric']['verdict'] if verdict else '–'}"
    )


def wait_for_lab(lab: Lab, scenario: str) -> None:
    """Every Locust worker connected, the API scraped: only then does a measurement mean something."""
    wait_for(lambda: lab.value("max(locust_workers)") == LOCUST_WORKERS, 120, "the Locust workers to connect", 0.5)
    wait_for(lambda: lab.value('sum(up{job="model-api"})'), 120, "Prometheus to scrape the API", 0.5)
    wait_for(lambda: lab.value("max(locust_users)") is not None, 60, "Prometheus to scrape Locust", 0.5)
    say(scenario, f"lab ready: Locust {lab.locust_url}, Prometheus {lab.prometheus_url}"
        + (f", Grafana {lab.grafana_url}" if lab.grafana_url else ""))  # fmt: skip


def profile_breaking_step(
    lab: Lab, scenario: str, plan: Plan, summary: dict[str, Any] | None, verdict: str, folder: Path
) -> Profile | None:
    """The step at the breaking point again, once the run is measured, this time under py-spy: the users of the
    step that broke (or of the last one, if none did), all started at once, for PROFILE_SECONDS. Recorded after the
    measurement, so that py-spy's pauses (native frames need the process stopped for each sample) change no figure
    of the report. The target is the API, or a Locust worker when the verdict says the load generator was the
    bottleneck. None, said why, when it cannot be taken: a profile never fails the experiment."""
    step = (summary or {}).get("breaking_step") or (summary or {}).get("last_held")
    if not step:
        say(scenario, "no profile: the run measured no step")
        return None
    users = int(step["users"])
    try:
        target = target_in(lab, "locust" if verdict == LOAD_GENERATOR_SATURATED else "api")
        say(scenario, f"profiling {target.description} for {PROFILE_SECONDS}s under the breaking step's {users} users")
        lab.start_swarm(user_count=users, spawn_rate=users, wait_max=plan.wait_max, slo_ms=plan.slo_ms)
        try:
            wait_for(lambda: lab.locust_stats()["user_count"] == users, 60, f"{users} users to spawn", 0.5)
            return record(target, PROFILE_SECONDS, folder, scenario, f"the breaking step again ({users} users)")
        finally:
            lab.stop_swarm()
    except LabError as error:
        say(scenario, f"no profile: {error}")
        return None


def run_load(lab: Lab, scenario: str, plan: Plan, progress_every: float = 5) -> tuple[float, float]:
    """Run the breaking-point shape to its end, printing progress; returns the run's (start, end) times."""
    started = time.time()
    lab.start_swarm(**plan.form())
    deadline = time.monotonic() + plan.longest()
    while lab.locust_state() not in {"stopped", "ready"}:
        if time.monotonic() > deadline:
            raise LabError(f"the breaking-point run did not stop within {plan.longest():.0f}s")
        say(scenario, f"{time.time() - started:5.0f}s  {now_line(lab)}")
        time.sleep(progress_every)
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
def lab_for(
    scenario: str | None,
    native: bool,
    workdir: Path,
    model_dir: Path,
    api_environment: dict[str, str] | None = None,
    replicas: int = 1,
) -> Iterator[Lab]:
    """The lab with `scenario`'s override, the API's environment then set by `api_environment` (WEB_CONCURRENCY
    for its workers), and `replicas` API replicas (compose only)."""
    environment = dict(api_environment or {})
    if native:
        if replicas != 1:
            raise LabError("a native lab runs one API replica; replicas need the compose lab")
        workers = environment.pop("WEB_CONCURRENCY", None)
        with native_lab(
            workdir, scenario, locust_workers=LOCUST_WORKERS, model_dir=model_dir, api_env=environment,
            locust_env=locust_environment(scenario), workers=int(workers) if workers else None,
        ) as lab:  # fmt: skip
            yield lab
    else:
        overrides = []
        if environment:
            overrides.append(workdir / "api-override.yaml")
            overrides[0].write_text(api_override(environment, "the configuration this run measures"))
        with compose_lab(
            f"lab-exp-{scenario or 'default'}", workdir / "locust", scenario=scenario, overrides=overrides,
            scale={"api": replicas} if replicas != 1 else None,
        ) as lab:  # fmt: skip
            yield lab


def run_experiment(
    scenario: str,
    out: Path,
    plan: Plan,
    native: bool = False,
    progress_every: float = 5,
    model_dir: Path = MODEL_DIR,
    profile: bool = True,
) -> tuple[ExperimentReport, Path]:
    """Run `scenario` under `plan`; returns the report and the path of its summary. A native run serves the
    models in `model_dir`; the compose lab trains its own into its image. With `profile`, the flame graph of the
    step at the breaking point goes beside the summary."""
    mode = "natively (processes on 127.0.0.1)" if native else "on Docker Compose"
    folder = out / scenario
    say(scenario, f"starting the lab {mode}")
    with (
        tempfile.TemporaryDirectory(prefix=f"experiment-{scenario}-") as tmp,
        lab_for(scenario, native, Path(tmp), model_dir) as lab,
    ):
        wait_for_lab(lab, scenario)
        say(scenario, f"breaking point: {plan.start_users} users, +{plan.step_users} every {plan.step_seconds:.0f}s, "
            f"until P99 > {plan.slo_ms:.0f} ms or {plan.max_users} users")  # fmt: skip
        started, ended = run_load(lab, scenario, plan, progress_every)
        summary = breaking_point_summary(lab)
        say(scenario, f"run over after {ended - started:.0f}s: {summary['result'] if summary else 'no summary'}")
        # A step that broke the SLO was cut short: its verdicts come after it. One that held ran its full time.
        until = wait_for_diagnosis(lab, scenario, ended) if broke_the_slo(summary) else ended + 5
        series: RunSeries = collect(lab, started - 5, until)
        report = build_report(scenario, "native" if native else "compose", series, summary)
        if profile:
            flame = profile_breaking_step(lab, scenario, plan, summary, report.verdict, folder)
            report = dataclasses.replace(report, profile=flame.to_json() if flame else None)
        say(scenario, "collected the run from Prometheus; stopping the lab")
    path = write_report(report, folder)
    say(scenario, f"verdict under load: {report.verdict}; time to verdict: {report.time_to_verdict_short()}; "
        f"report: {path}")  # fmt: skip
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
        "--no-profile", action="store_true", help="no flame graph of the breaking step (else beside the report)"
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
                       profile=not args.no_profile)  # fmt: skip
    except (LabError, httpx2.HTTPError) as error:  # a lab that could not start, or stopped answering
        print(f"experiment failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
