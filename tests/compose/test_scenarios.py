"""Proof: every scenario, run by the experiment runner, shows the signature DESIGN.md promises.

It runs on the compose lab; where Docker is missing (and LAB_REQUIRE_DOCKER is not 1), on the same components
started natively, with the API pinned to as many cores as the scenario's CPU limit. LAB_PROOF_MODE=native or
=compose chooses. Each scenario runs once (cached for the module) under the same short breaking-point plan:
10 users, +10 every 15 s, up to 60, each user waiting up to 1 s between requests (enough load to saturate one
CPU). The assertions read the runner's report, i.e. what Prometheus recorded, never assumed figures.
Where a signature does not show, the scenario or the rules are what must change, not these tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from experiments.run import Plan, run_experiment
from lab import compose as stack
from tests.support.compose import build_images
from tests.support.tools import promtool

PLAN = Plan(start_users=10, step_users=10, step_seconds=15, max_users=60, wait_max=1.0)

Report = dict[str, Any]


def proof_mode() -> str:
    """compose where Docker can run the lab (or must: LAB_REQUIRE_DOCKER=1), else native; LAB_PROOF_MODE chooses."""
    chosen = os.environ.get("LAB_PROOF_MODE", "")
    if chosen not in ("", "compose", "native"):
        pytest.fail(f"LAB_PROOF_MODE={chosen!r}: use compose or native (or leave it unset)")
    docker_missing = stack.docker_problem() is not None and os.environ.get("LAB_REQUIRE_DOCKER") != "1"
    if chosen == "native" or (not chosen and docker_missing):
        promtool()  # a native run needs Prometheus: skips naming it, or fails under LAB_REQUIRE_PROMETHEUS=1
        return "native"
    build_images()  # skips naming Docker, or fails under LAB_REQUIRE_DOCKER=1
    return "compose"


@pytest.fixture(scope="module")
def mode() -> str:
    return proof_mode()


@pytest.fixture(scope="module")
def experiment(mode, tmp_path_factory, model_dir) -> Callable[[str], Report]:
    out = tmp_path_factory.mktemp("experiments")
    done: dict[str, Report] = {}

    def run(scenario: str) -> Report:
        if scenario not in done:
            done[scenario], summary = run_experiment(
                scenario, out, PLAN, native=mode == "native", progress_every=10, model_dir=model_dir
            )
            print(summary.read_text())
        return done[scenario]

    return run


def peak(report: Report, figure: str) -> float:
    value = report["peaks"][figure]
    assert value is not None, f"{report['scenario']}: no {figure} was recorded"
    return value


def held_rps(report: Report) -> float:
    """RPS at the last step that held the SLO (the most the scenario served within it), else the peak."""
    held = (report["breaking_point"] or {}).get("last_held")
    return held["rps"] if held else peak(report, "rps_client")


def test_baseline_climbs_towards_its_cpu_limit_as_users_grow_and_says_cpu_bound(experiment):
    baseline = experiment("baseline")
    cpu = [step["cpu_utilization"] for step in baseline["steps"] if step["cpu_utilization"] is not None]
    assert cpu[-1] > 3 * cpu[0]
    assert peak(baseline, "cpu_utilization") > 0.6
    assert baseline["verdict"] == "cpu-bound"


def test_cpu_bound_pins_the_cpu_at_its_limit_and_says_cpu_bound(experiment, mode):
    report = experiment("cpu-bound")
    # Pinned: above the diagnosis's 75% with a margin (98% on a quiet machine; 85% seen on a slow, busy one,
    # where the host's second core also runs Locust, Prometheus and the balancer).
    assert peak(report, "cpu_utilization") > 0.8
    if mode == "compose":
        assert peak(report, "cpu_throttled") > 0.1  # the quota runs out
    else:
        assert peak(report, "worker_cpu") > 0.75  # a pinned core has no quota: its one worker fills it
    assert report["verdict"] == "cpu-bound"


def test_io_bound_keeps_the_cpu_low_with_every_thread_busy_and_says_io_bound(experiment):
    report = experiment("io-bound")
    assert peak(report, "cpu_utilization") < 0.5
    assert peak(report, "in_flight") >= peak(report, "thread_capacity")
    assert report["verdict"] == "io-bound"


def busiest(report: Report) -> dict[str, Any]:
    """The step that served the most requests (with a CPU reading)."""
    return max((s for s in report["steps"] if s["rps"] and s["cpu_utilization"] is not None), key=lambda s: s["rps"])


def cpu_per_request(step: dict[str, Any], cores: float) -> float:
    """CPU seconds a request cost during a step: the CPU it used against its limit, per request served."""
    return step["cpu_utilization"] * cores / step["rps"]


def test_async_io_serves_many_times_io_bound_until_the_cpu_is_its_limit_and_its_waiting_costs_no_cpu(experiment):
    """The waiting is free: async-io serves many times io-bound's requests with the same users, as many as one
    core can compute. On a fast core (a 7 ms model) that is 4-5x io-bound's; on a slow one (39 ms) the CPU becomes
    the limit first, and then it must be at its limit and the verdict cpu-bound. Either way a request costs no
    more CPU than io-bound's, which waited in a thread: a wait costs no CPU in either style."""
    async_io, io_bound = experiment("async-io"), experiment("io-bound")
    assert peak(async_io, "in_flight") > peak(io_bound, "thread_capacity")
    ratio = peak(async_io, "rps_client") / peak(io_bound, "rps_client")
    if ratio <= 2:  # a slow core: the CPU, not the wait, caps async-io
        assert ratio > 1.5
        assert peak(async_io, "cpu_utilization") > 0.8
        assert async_io["verdict"] == "cpu-bound"
    # Each at its busiest step, where the 30 s windows hold the most of it (an early 15 s step's RPS and CPU
    # average over different stretches). A wait that cost CPU would cost its 250 ms: many times more, not 2x.
    cores = peak(async_io, "cpu_limit")
    assert cpu_per_request(busiest(async_io), cores) < 2 * cpu_per_request(busiest(io_bound), cores)


def test_blocking_async_lags_its_event_loop_and_says_so(experiment):
    report = experiment("blocking-async")
    assert peak(report, "event_loop_lag") > 0.1
    assert peak(report, "cpu_utilization") < 0.5
    assert report["verdict"] == "event-loop-blocked"


def test_batching_groups_requests_and_serves_more_than_baseline(experiment):
    batching, baseline = experiment("batching"), experiment("baseline")
    assert peak(batching, "batch_size") > 1
    assert peak(batching, "rps_client") > peak(baseline, "rps_client")


def test_more_workers_serve_more_cpu_bound_requests_than_baseline(experiment):
    more, baseline = experiment("more-workers"), experiment("baseline")
    assert held_rps(more) > held_rps(baseline)
    assert peak(more, "memory_bytes") > peak(baseline, "memory_bytes")
