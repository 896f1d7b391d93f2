"""Load shapes: plans that say how many users to run at each moment.

The plans are plain classes (unit-tested on tick sequences); the LoadTestShape classes at the bottom only
connect them to Locust. Each shape lives in its own file under locust/shapes/, because Locust runs the first
shape it finds in the files it loads: add one with `-f locustfile.py,shapes/breaking_point.py`, or load them
all with `--class-picker` and choose in the web UI.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from locust import LoadTestShape, events
from model_api.vocabulary import BREAKING_POINT, P999_MIN_SAMPLES, SLO_MS

Tick = tuple[int, float] | None  # (users, spawn rate), or None to stop
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Cumulative client statistics at one moment (all endpoints together)."""

    at: float
    requests: int
    failures: int
    response_times: dict[int, int]  # Locust's rounded milliseconds -> count

    @classmethod
    def of(cls, stats: Any, at: float) -> Snapshot:
        total = stats.total
        return cls(at, total.num_requests, total.num_failures, dict(total.response_times))


@dataclass(frozen=True)
class StepResult:
    """What one step of users measured, from its own requests only."""

    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    failure_ratio: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # None when the step counted fewer than P999_MIN_SAMPLES requests: its P99.9 would be its slowest one or two.
    p999_ms: float | None = None

    @classmethod
    def between(cls, users: int, start: Snapshot, end: Snapshot) -> StepResult:
        requests = end.requests - start.requests
        failures = end.failures - start.failures
        times = diff_response_time_dicts(end.response_times, start.response_times)
        counted = sum(times.values())

        def percentile(p: float) -> float:
            return float(calculate_response_time_percentile(times, counted, p)) if counted else 0.0

        seconds = end.at - start.at
        return cls(
            users=users,
            seconds=round(seconds, 3),
            requests=requests,
            failures=failures,
            rps=round(requests / seconds, 2) if seconds > 0 else 0.0,
            failure_ratio=round(failures / requests, 4) if requests else 0.0,
            p50_ms=percentile(0.50),
            p95_ms=percentile(0.95),
            p99_ms=percentile(0.99),
            p999_ms=percentile(0.999) if counted >= P999_MIN_SAMPLES else None,
        )


@dataclass
class BreakingPointPlan:
    """Add users in steps; hold each step, measure it alone, stop at the first step that breaks the SLO.

    A step breaks when its client P99 exceeds `slo_ms` or more than `max_failure_ratio` of its requests fail.
    Measuring starts once the step's users have spawned, so the ramp does not count.
    """

    start_users: int = BREAKING_POINT["start_users"]
    step_users: int = BREAKING_POINT["step_users"]
    step_seconds: float = BREAKING_POINT["step_seconds"]
    max_users: int = BREAKING_POINT["max_users"]
    spawn_rate: float = BREAKING_POINT["spawn_rate"]
    slo_ms: float = SLO_MS
    max_failure_ratio: float = BREAKING_POINT["max_failure_ratio"]
    steps: list[StepResult] = field(default_factory=list)
    breaking: StepResult | None = None
    finished_reason: str = ""
    _users: int = 0
    _added: int = 0
    _step_started: float = 0.0
    _measure_from: Snapshot | None = None

    def tick(self, now: float, snapshot: Any) -> Tick:
        """`snapshot()` returns the current Snapshot; called only when a measurement starts or ends."""
        if self.finished_reason:
            return None
        if self._users == 0:
            self._begin(self.start_users, now)
        if self._measure_from is None and now - self._step_started >= self._added / self.spawn_rate:
            self._measure_from = snapshot()
        if self._measure_from is not None and now - self._measure_from.at >= self.step_seconds:
            result = StepResult.between(self._users, self._measure_from, snapshot())
            if result.p99_ms > self.slo_ms or result.failure_ratio > self.max_failure_ratio:
                self.breaking = result
                self.finished_reason = (
                    f"{result.users} users broke the SLO: P99 {result.p99_ms:.0f} ms (SLO {self.slo_ms:.0f} ms), "
                    f"failures {result.failure_ratio:.1%} (limit {self.max_failure_ratio:.0%})"
                )
                return None
            self.steps.append(result)
            if self._users + self.step_users > self.max_users:
                self.finished_reason = f"reached {self._users} users (the maximum) without breaking the SLO"
                return None
            self._begin(self._users + self.step_users, now)
        return self._users, self.spawn_rate

    def _begin(self, users: int, now: float) -> None:
        self._added = users - self._users  # the step's ramp lasts as long as spawning these takes
        self._users = users
        self._step_started = now
        self._measure_from = None

    @property
    def last_held(self) -> StepResult | None:
        return self.steps[-1] if self.steps else None

    def summary(self) -> dict[str, Any]:
        return {
            "result": self.finished_reason or "stopped before the plan finished",
            "last_held": asdict(self.last_held) if self.last_held else None,
            "breaking_step": asdict(self.breaking) if self.breaking else None,
            "slo_ms": self.slo_ms,
            "max_failure_ratio": self.max_failure_ratio,
            "steps": [asdict(step) for step in self.steps],
        }


@dataclass(frozen=True)
class SpikePlan:
    """Steady load, a sudden burst, back to steady: shows a queue forming and draining."""

    base_users: int = 10
    peak_users: int = 60
    base_seconds: float = 30.0
    peak_seconds: float = 20.0
    recovery_seconds: float = 40.0
    spawn_rate: float = 100.0

    def tick(self, elapsed: float) -> Tick:
        if elapsed < self.base_seconds:
            return self.base_users, self.spawn_rate
        if elapsed < self.base_seconds + self.peak_seconds:
            return self.peak_users, self.spawn_rate
        if elapsed < self.base_seconds + self.peak_seconds + self.recovery_seconds:
            return self.base_users, self.spawn_rate
        return None


def failures(stats: Any) -> list[dict[str, Any]]:
    """Locust's failures table as its Failures tab shows it (every worker's together): one row per route and
    message, the most frequent first."""
    keep = ("method", "name", "error", "occurrences")
    rows = [{key: error.to_dict()[key] for key in keep} for error in stats.errors.values()]
    return sorted(rows, key=lambda row: -row["occurrences"])


def summary_path(options: Any, name: str) -> Path:
    """Next to Locust's CSV (--csv PREFIX) or HTML report, else in the current folder."""
    if getattr(options, "csv_prefix", None):
        return Path(f"{options.csv_prefix}_{name}.json")
    if getattr(options, "html_file", None):
        return Path(options.html_file).with_name(f"{Path(options.html_file).stem}_{name}.json")
    return Path(f"{name}.json")


class BreakingPointShape(LoadTestShape):
    """Steps of users until the SLO breaks; writes the last step that held as JSON (see BreakingPointPlan)."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: BreakingPointPlan | None = None
        events.test_stop.add_listener(self._write_summary)

    def _make_plan(self) -> BreakingPointPlan:
        o = self.runner.environment.parsed_options
        return BreakingPointPlan(
            start_users=o.bp_start_users,
            step_users=o.bp_step_users,
            step_seconds=o.bp_step_seconds,
            max_users=o.bp_max_users,
            spawn_rate=o.bp_spawn_rate,
            slo_ms=o.slo_ms,
            max_failure_ratio=o.bp_max_failure_ratio,
        )

    def tick(self) -> Tick:
        if self.plan is None:
            self.plan = self._make_plan()
        now = self.get_run_time()
        return self.plan.tick(now, lambda: Snapshot.of(self.runner.stats, self.get_run_time()))

    def _write_summary(self, environment: Any, **_kwargs: Any) -> None:
        if self.plan is None:
            return
        # The run is over: the next one (a master that stays up runs the shape again and again) plans afresh.
        plan, self.plan = self.plan, None
        path = summary_path(environment.parsed_options, "breaking_point")
        summary = {**plan.summary(), "failures": failures(self.runner.stats)}
        path.write_text(json.dumps(summary, indent=2) + "\n")
        held = plan.last_held
        log.info(
            f"breaking point: {plan.finished_reason}; "
            + (
                f"last step that held: {held.users} users, {held.rps:.1f} req/s, "
                f"P50/P95/P99 {held.p50_ms:.0f}/{held.p95_ms:.0f}/{held.p99_ms:.0f} ms"
                if held
                else "no step held"
            )
            + f" -> {path}"
        )


class SpikeShape(LoadTestShape):
    """Steady, burst, steady again (see SpikePlan)."""

    def tick(self) -> Tick:
        o = self.runner.environment.parsed_options
        plan = SpikePlan(
            o.spike_base_users, o.spike_peak_users, o.spike_base_seconds, o.spike_peak_seconds, o.spike_recovery_seconds
        )
        return plan.tick(self.get_run_time())
