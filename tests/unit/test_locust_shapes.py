"""Load-shape plans on tick sequences: what users they ask for, when they measure, when they stop."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lab_locust.shapes import BreakingPointPlan, Snapshot, SpikePlan, StepResult, summary_path


class FakeLoad:
    """Cumulative stats that grow as if `users` users each sent 2 req/s answered in `latency_ms(users)`."""

    def __init__(self, latency_ms, failure_ratio=0.0) -> None:
        self.latency_ms = latency_ms
        self.failure_ratio = failure_ratio
        self.requests = 0
        self.failures = 0
        self.times: dict[int, int] = {}
        self.now = 0.0

    def advance(self, seconds: float, users: int) -> None:
        for _ in range(int(seconds)):
            self.now += 1
            sent = 2 * users
            self.requests += sent
            self.failures += round(sent * self.failure_ratio)
            ms = self.latency_ms(users)
            self.times[ms] = self.times.get(ms, 0) + sent

    def snapshot(self) -> Snapshot:
        return Snapshot(self.now, self.requests, self.failures, dict(self.times))


def run(plan: BreakingPointPlan, load: FakeLoad, limit: int = 10_000) -> list[tuple[int, float] | None]:
    ticks = []
    for _ in range(limit):
        tick = plan.tick(load.now, load.snapshot)
        ticks.append(tick)
        if tick is None:
            return ticks
        load.advance(1, tick[0])
    raise AssertionError("the plan never stopped")


def test_breaking_point_steps_up_and_stops_at_the_first_step_over_the_slo():
    plan = BreakingPointPlan(start_users=10, step_users=10, step_seconds=5, max_users=100, spawn_rate=10, slo_ms=500)
    load = FakeLoad(latency_ms=lambda users: 100 if users <= 30 else 900)

    ticks = run(plan, load)

    users_asked = [t[0] for t in ticks if t]
    assert users_asked[0] == 10
    assert sorted(set(users_asked)) == [10, 20, 30, 40]
    assert ticks[-1] is None
    assert plan.last_held.users == 30
    assert plan.breaking.users == 40
    assert plan.breaking.p99_ms == 900
    assert "40 users broke the SLO" in plan.finished_reason


def test_each_step_is_measured_from_its_own_requests_after_its_ramp():
    plan = BreakingPointPlan(start_users=10, step_users=10, step_seconds=4, max_users=20, spawn_rate=5, slo_ms=500)
    load = FakeLoad(latency_ms=lambda users: 50 * users // 10)

    run(plan, load)

    first, second = plan.steps
    assert (first.users, first.requests, first.seconds) == (10, 4 * 2 * 10, 4)
    assert (second.users, second.requests) == (20, 4 * 2 * 20)
    assert first.p99_ms == 50
    assert second.p99_ms == 100  # not mixed with the first step's faster answers
    assert second.rps == pytest.approx(40)


def test_a_failure_ratio_over_the_limit_breaks_a_step_even_when_fast():
    plan = BreakingPointPlan(start_users=5, step_users=5, step_seconds=3, max_users=50, spawn_rate=50, slo_ms=1000)
    load = FakeLoad(latency_ms=lambda users: 10, failure_ratio=0.1)

    run(plan, load)

    assert plan.last_held is None
    assert plan.breaking.failure_ratio == pytest.approx(0.1)


def test_the_plan_stops_at_the_maximum_when_nothing_breaks():
    plan = BreakingPointPlan(start_users=5, step_users=5, step_seconds=2, max_users=15, spawn_rate=50, slo_ms=1000)

    run(plan, FakeLoad(latency_ms=lambda users: 10))

    assert [step.users for step in plan.steps] == [5, 10, 15]
    assert plan.breaking is None
    assert "without breaking the SLO" in plan.finished_reason
    assert plan.summary()["last_held"]["users"] == 15


def test_step_results_use_locusts_percentiles_on_the_difference():
    start = Snapshot(10.0, 100, 0, {10: 100})
    end = Snapshot(20.0, 300, 4, {10: 250, 200: 45, 900: 5})  # this step alone: 150 x 10 ms, 45 x 200, 5 x 900

    result = StepResult.between(7, start, end)

    assert (result.requests, result.failures, result.rps) == (200, 4, 20.0)
    assert result.failure_ratio == 0.02
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (10, 200, 900)
    assert result.p999_ms is None  # 200 requests: too few for a P99.9


def test_a_step_of_a_thousand_requests_or_more_has_a_p999():
    start = Snapshot(0.0, 0, 0, {})
    end = Snapshot(10.0, 2000, 0, {10: 1990, 500: 9, 3000: 1})  # only 1 in 2,000 slower than 500 ms

    result = StepResult.between(20, start, end)

    assert result.p99_ms == 10
    assert result.p999_ms == 500


def test_spike_is_steady_then_bursts_then_recovers_then_stops():
    plan = SpikePlan(base_users=10, peak_users=60, base_seconds=30, peak_seconds=20, recovery_seconds=40)

    assert [plan.tick(t) for t in (0, 29.9, 30, 49.9, 50, 89.9)] == [
        (10, 100.0), (10, 100.0), (60, 100.0), (60, 100.0), (10, 100.0), (10, 100.0),
    ]  # fmt: skip
    assert plan.tick(90) is None


@pytest.mark.parametrize(
    ("csv", "html", "expected"),
    [
        ("reports/run", None, "reports/run_breaking_point.json"),
        (None, "reports/run.html", "reports/run_breaking_point.json"),
        (None, None, "breaking_point.json"),
    ],
)
def test_the_summary_goes_next_to_locusts_reports(csv, html, expected):
    options = SimpleNamespace(csv_prefix=csv, html_file=html)

    assert str(summary_path(options, "breaking_point")) == expected


def test_the_breaking_point_shape_plans_afresh_for_each_run_of_a_long_lived_master(tmp_path):
    from locust.stats import RequestStats

    from lab_locust.shapes import BreakingPointShape

    options = SimpleNamespace(
        bp_start_users=5, bp_step_users=5, bp_step_seconds=20, bp_max_users=50, bp_spawn_rate=10, slo_ms=1000,
        bp_max_failure_ratio=0.01, csv_prefix=str(tmp_path / "run"), html_file=None,
    )  # fmt: skip
    environment = SimpleNamespace(parsed_options=options)
    shape = BreakingPointShape()
    shape.runner = SimpleNamespace(environment=environment, stats=RequestStats())

    assert shape.tick() == (5, 10)
    first_plan = shape.plan
    first_plan.finished_reason = "5 users broke the SLO"  # the run ended at its breaking point
    shape._write_summary(environment)  # what Locust's test_stop does then

    assert (tmp_path / "run_breaking_point.json").is_file()
    assert json.loads((tmp_path / "run_breaking_point.json").read_text())["failures"] == []
    assert shape.tick() == (5, 10), "a second run starts again at the first step"
    assert shape.plan is not first_plan


def test_the_summary_carries_locusts_failures_table_most_frequent_first():
    from locust.exception import CatchResponseError
    from locust.stats import RequestStats

    from lab_locust.shapes import failures

    stats = RequestStats()
    for message, times in (("slower than the SLO of 1000 ms", 1), ("no response: ConnectionResetError()", 3)):
        for _ in range(times):
            stats.log_error("POST", "/classify", CatchResponseError(message))

    rows = failures(stats)

    assert [(row["name"], row["occurrences"]) for row in rows] == [("/classify", 3), ("/classify", 1)]
    assert "no response: ConnectionResetError()" in rows[0]["error"]
