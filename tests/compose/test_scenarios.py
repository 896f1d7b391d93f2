"""Proof: every scenario, run by the experiment runner, shows the signature DESIGN.md promises.

It runs on the compose lab; where Docker is missing (and LAB_REQUIRE_DOCKER is not 1), on the same components
started natively, with the API pinned to as many cores as the scenario's CPU limit. LAB_PROOF_MODE=native or
=compose chooses. Each scenario runs once (cached for the module) under a short breaking-point plan: 10 users,
+10 every 15 s, up to 100, each user waiting up to 1 s between requests (enough load to take one CPU past its
knee); the two that serve several times more (more workers, batching) under one that reaches their saturation,
and io-bound, whose pool serves 8 req/s, from 4 users up. The
assertions read the runner's report (what Prometheus and Locust recorded), never assumed figures; each
signature of DESIGN.md's table is asserted with a margin.
Where a signature does not show, the scenario or the rules are what must change, not these tests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from experiments.report import ExperimentReport, Step
from experiments.run import Plan, run_experiment
from lab import compose as stack
from lab.profiling import in_framework, in_model, read_speedscope
from lab.scenarios import api_service
from model_api.vocabulary import SLOWER_THAN_SLO
from tests.support.compose import build_images
from tests.support.tools import promtool

# A test runs up to two experiments (the lab up, a breaking-point run, the report, the lab down: 3-5 min each),
# the first one also the image build.
pytestmark = pytest.mark.timeout(900)

PLAN = Plan(start_users=10, step_users=10, step_seconds=15, max_users=100, wait_max=1.0)
# For the scenarios that serve several times baseline (more workers, batching): users each asking about four
# times a second, up to about 600 req/s offered, so that the plan reaches their saturation, not its own cap.
SATURATING = Plan(start_users=20, step_users=20, step_seconds=15, max_users=160, wait_max=0.5)
# batching holds the 160 users of that plan (docs/scenarios/batching.md: healthy at 160, its batch growing at every
# step from 1.5 to 11.9): the same users in steps of 40, four steps instead of eight, a minute less of CI, and still
# three steps and more to see its batch grow.
BATCHING_PLAN = Plan(start_users=40, step_users=40, step_seconds=15, max_users=160, wait_max=0.5)
# io-bound's pool (2 threads, 250 ms) serves 8 req/s: it starts lower, so that it has a step below its ceiling.
# onnx serves about twenty times baseline: users that each ask about 15 times a second, from 40 (about 600 req/s
# offered) to 160, where the API's CPU is full; beyond, the load generator on the other core falls behind and
# the held RPS falls with it (seen here: 1411 req/s at 190 users, 632 at 240).
ONNX_PLAN = Plan(start_users=40, step_users=40, step_seconds=15, max_users=160, wait_max=0.1)
# cold-start: the spike, every user at once as soon as the lab answers, for one long step that outlasts the
# models' 60 s download (docs/scenarios/cold-start.md).
COLD_START_PLAN = Plan(start_users=20, step_users=20, step_seconds=90, max_users=20, spawn_rate=20, wait_max=1.0)
# memory-bound: one long step at a load the API serves with CPU to spare, so that only the leak can break it: memory
# climbs with every request until the OOM killer takes a worker (before 30 s here), and the load goes on.
MEMORY_PLAN = Plan(start_users=20, step_users=20, step_seconds=75, max_users=20, spawn_rate=20, wait_max=1.0)
# caching: io-bound's plan (4 users, 4 more every 15 s: the 2 threads take the cold cache's misses while it fills)
# to 24 users, about 34 req/s offered: several times what io-bound's pool could serve, if the cache answers most.
# A steeper start (4 users, then 12 at 20 s) broke at 12 users in a slow hour: the misses of a cache filled by
# 20 s of 4 users outran the two threads (P99 1200 ms, 85% hits over the run).
CACHING_PLAN = Plan(start_users=4, step_users=4, step_seconds=15, max_users=24, wait_max=1.0)
# async-io: three steps to 50 users, about 65 req/s offered: over 4 times what io-bound's pool serves (its proof's
# bar), with far more requests in flight than io-bound's threads, in 45 s instead of the default plan's 150.
ASYNC_IO_PLAN = Plan(start_users=10, step_users=20, step_seconds=15, max_users=50, wait_max=1.0)
# cpu-bound: steps of 25 s, so that the 30 s window the CPU is read through lies almost wholly in the step that
# saturates it. With 15 s steps, a slow hour broke the SLO at the second step and read 78% CPU through a window
# half in the step before (the API was saturated: RPS 14 -> 16 while the users doubled).
CPU_BOUND_PLAN = Plan(start_users=10, step_users=10, step_seconds=25, max_users=100, wait_max=1.0)
PLANS = {
    "cpu-bound": CPU_BOUND_PLAN,
    "async-io": ASYNC_IO_PLAN,
    "more-workers": SATURATING,
    "batching": BATCHING_PLAN,
    "io-bound": Plan(4, 4, 15, 40, wait_max=1.0),
    "onnx": ONNX_PLAN,
    "cold-start": COLD_START_PLAN,
    "memory-bound": MEMORY_PLAN,
    "caching": CACHING_PLAN,
}


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
def experiment(mode, tmp_path_factory, model_dir) -> Callable[[str], ExperimentReport]:
    out = tmp_path_factory.mktemp("experiments")
    done: dict[str, ExperimentReport] = {}

    def run(scenario: str) -> ExperimentReport:
        if scenario not in done:
            done[scenario], summary = run_experiment(
                scenario,
                out,
                PLANS.get(scenario, PLAN),
                native=mode == "native",
                progress_every=10,
                model_dir=model_dir,
                # Only onnx's signature reads its flame graph: the others skip the profiling step (15 s each).
                profile=scenario == "onnx",
            )
            # Its time to verdict is in the summary (and the runner's last line): printed, never asserted, as
            # timings are measured and reported (docs/experiments.md), not tested.
            print(summary.read_text())
        return done[scenario]

    return run


def peak(report: ExperimentReport, figure: str) -> float:
    value = report.peaks[figure]
    assert value is not None, f"{report.scenario}: no {figure} was recorded"
    return value


def measured_steps(report: ExperimentReport) -> list[dict[str, Any]]:
    steps = report.measured_steps()
    assert steps, f"{report.scenario}: the breaking-point shape measured no step"
    return steps


def held_rps(report: ExperimentReport) -> float:
    """RPS at the last step that held the SLO: the most the scenario served within it."""
    held = report.held()
    assert held, f"{report.scenario}: not even the first step held the SLO"
    return held["rps"]


def busiest(report: ExperimentReport) -> Step:
    """The step (from Prometheus) that served the most requests, with a CPU reading."""
    return max((s for s in report.steps if s.rps and s.cpu_utilization is not None), key=lambda s: s.rps or 0)


def cpu_per_request(step: Step, cores: float) -> float:
    """CPU seconds a request cost during a step: the CPU it used against its limit, per request served."""
    return (step.cpu_utilization or 0) * cores / (step.rps or 1)


def downstream_seconds(scenario: str) -> float:
    return float(api_service(scenario).environment["LAB_DOWNSTREAM_LATENCY_MS"]) / 1000


def test_baseline_climbs_to_its_cpu_limit_and_its_latency_rises_past_the_knee(experiment):
    """CPU climbs to the quota as users grow (its peak over 75% of the quota and over 3x the first step's); past
    the knee, the median request slows several times (P50 over 3x the first step's) and P99 climbs (over 1.5x the
    lowest of the steps before: P99 at low load is where a busy host's own stalls show, 550 ms in one CI run at
    12% CPU); the verdict cpu-bound. The peak, not the last step's average: a slow hour reached the knee at the
    second step (20 users), which broke the SLO within seconds, and that short step's 30 s windows averaged in the
    step before (0.55 against the first step's 0.20, while the peak read 0.80)."""
    baseline = experiment("baseline")
    cpu = [step.cpu_utilization for step in baseline.steps if step.cpu_utilization is not None]
    assert peak(baseline, "cpu_utilization") > 0.75
    assert peak(baseline, "cpu_utilization") > 3 * cpu[0]
    steps = measured_steps(baseline)
    assert (baseline.breaking_point or {}).get("breaking_step"), "the plan never took baseline past its knee"
    assert steps[-1]["p50_ms"] > 3 * steps[0]["p50_ms"], steps
    assert steps[-1]["p99_ms"] > 1.5 * min(step["p99_ms"] for step in steps[:-1]), steps
    assert baseline.verdict == "cpu-bound"


def test_cpu_bound_pins_the_cpu_and_its_rps_stays_flat_while_requests_queue_in_the_worker(experiment, mode):
    """CPU at the quota (throttled in a container), RPS flat as users grow, and the queue inside the worker:
    the wait before the handler passes the time being served, and client P99 stays close to server P99."""
    report = experiment("cpu-bound")
    # Pinned: above the diagnosis's 75% with a margin (98% on a quiet machine; 85% seen on a slow, busy one,
    # where the host's second core also runs Locust, Prometheus and the balancer).
    assert peak(report, "cpu_utilization") > 0.8
    if mode == "compose":
        assert peak(report, "cpu_throttled") > 0.1  # the quota runs out
    else:
        assert peak(report, "worker_cpu") > 0.75  # a pinned core has no quota: its one worker fills it
    steps = measured_steps(report)
    assert len(steps) >= 2, steps
    # RPS stops following the users: from the first step to the last, it grows at most 0.8 times as much as the
    # users do (an API with CPU to spare serves each user alike, about 1.0; seen here: 0.67 and 0.72).
    first, last = steps[0], steps[-1]
    assert last["rps"] / first["rps"] < 0.8 * last["users"] / first["users"], steps
    busiest_step = busiest(report)
    assert peak(report, "wait_per_service") >= 1  # waiting longer than being served: the queue is in the worker
    assert (busiest_step.p99_client_ms or 0) < 2 * (busiest_step.p99_server_ms or 0), busiest_step
    assert report.verdict == "cpu-bound"


def test_io_bound_keeps_the_cpu_low_while_requests_wait_for_a_thread_and_p99_jumps(experiment):
    """Every thread busy at a low CPU; requests wait for a thread, longer than they are served; P99 jumps to
    several times the downstream wait that a request is made of."""
    report = experiment("io-bound")
    assert peak(report, "cpu_utilization") < 0.5
    assert peak(report, "in_flight") >= peak(report, "thread_capacity")
    assert peak(report, "wait_per_service") >= 1
    assert peak(report, "wait_before_handler") > downstream_seconds("io-bound")
    assert max(step["p99_ms"] for step in measured_steps(report)) > 3 * downstream_seconds("io-bound") * 1000
    assert report.verdict == "io-bound"


def test_async_io_serves_four_times_io_bound_and_its_waiting_costs_no_cpu(experiment):
    """Awaited, the same downstream wait holds no thread: in-flight grows past io-bound's pool, RPS is at least
    4x io-bound's, and a request costs no more CPU than io-bound's, which waited in a thread (a wait that cost
    CPU would cost its 250 ms: many times more, not 2x). Each is compared at its busiest step, where the 30 s
    windows hold the most of it."""
    async_io, io_bound = experiment("async-io"), experiment("io-bound")
    assert peak(async_io, "in_flight") > peak(io_bound, "thread_capacity")
    assert peak(async_io, "rps_client") >= 4 * peak(io_bound, "rps_client")
    cores = peak(async_io, "cpu_limit")
    assert cpu_per_request(busiest(async_io), cores) < 2 * cpu_per_request(busiest(io_bound), cores)


def test_blocking_async_serves_one_request_at_a_time_per_worker_with_its_loop_blocked(experiment):
    """The blocking call holds the event loop: RPS within 30% of workers / latency, CPU near zero, the loop's
    lag high, and the queue in the socket, where only the client sees it (client P99 well above server P99)."""
    report = experiment("blocking-async")
    service = api_service("blocking-async")
    ceiling = service.workers / downstream_seconds("blocking-async")
    served = max(step["rps"] for step in measured_steps(report))  # Locust's, per step: no window to smear it
    assert 0.7 * ceiling <= served <= 1.3 * ceiling
    assert peak(report, "cpu_utilization") < 0.25
    assert peak(report, "event_loop_lag") > 0.1
    assert peak(report, "p99_client") > 3 * peak(report, "p99_server")
    assert report.verdict == "event-loop-blocked"


def test_batching_serves_three_times_the_unbatched_api_with_batches_growing_with_load(experiment):
    """Under a plan that saturates it, batching holds at least 3x the RPS of the unbatched baseline within the
    SLO, and its mean batch grows with every step of users."""
    batching, baseline = experiment("batching"), experiment("baseline")
    assert held_rps(batching) >= 3 * held_rps(baseline)
    sizes = [step.batch_size for step in batching.steps if step.batch_size is not None]
    assert len(sizes) >= 3, batching.steps
    assert all(later >= 0.9 * earlier for earlier, later in itertools.pairwise(sizes)), sizes
    assert sizes[-1] >= 2 * sizes[0], sizes


def test_more_workers_use_the_second_core_and_hold_more_than_baseline(experiment):
    """Two workers on two cores: more than one core busy (one worker, one GIL, stays near one) and shared by both
    workers, more held within the SLO than baseline's one worker, and a second copy of the models in memory. (Not
    1.6x, nor both cores full: on a 2-core machine the load generator, Prometheus and the balancer share the
    cores, two busy vCPUs gave 1.3x to 2.0x one, and the API's peak ranged from 1.25 to 1.7 cores; see
    docs/scenarios/more-workers.md.)"""
    more, baseline = experiment("more-workers"), experiment("baseline")
    service = api_service("more-workers")
    assert (service.workers, service.cpus) == (2, 2)
    cores = peak(more, "cpu_utilization") * service.cpus  # the most cores the API used at once
    assert cores > 1.1  # over the one core that one worker's GIL allows: the second worker's share
    assert peak(more, "worker_cpu") < 0.75 * cores  # and no worker held the most of it: both were busy
    assert held_rps(more) > held_rps(baseline)
    assert peak(more, "workers_rss_bytes") > 1.5 * peak(baseline, "workers_rss_bytes")  # a second copy of the models


def test_onnx_holds_ten_times_baseline_on_the_same_cpu_and_its_flame_graph_is_the_framework_not_the_model(
    experiment,
):
    """The same forests under ONNX Runtime, at baseline's CPU limit: at least 10x baseline's held RPS within the
    SLO, and in the flame graph of its breaking step, the busy samples in the web framework (and none in the model)
    outweigh those in the model (the DictVectorizer and ONNX Runtime's run)."""
    onnx, baseline = experiment("onnx"), experiment("baseline")
    assert api_service("onnx").cpus == api_service("baseline").cpus
    assert held_rps(onnx) >= 10 * held_rps(baseline), (held_rps(onnx), held_rps(baseline))
    assert onnx.profile, "the runner took no flame graph of the breaking step"
    samples = read_speedscope(Path(onnx.profile["speedscope"])).busy()
    model, framework = samples.share(in_model), samples.share(lambda frame: in_framework(frame), unless=in_model)
    print(f"onnx flame graph: framework {framework:.1%} of the busy samples, model {model:.1%}")
    assert framework > 1.25 * model > 0


def test_cold_start_fails_requests_at_first_that_the_default_lab_does_not(experiment):
    """Without warm-up or readiness gate, the spike meets a worker still downloading its models: the first step
    fails (the API's own 503s among the failures), where baseline's, started only once the API was warm, had
    none; the worker then reports a start longer than the download."""
    cold, baseline = experiment("cold-start"), experiment("baseline")
    fetch = float(api_service("cold-start").environment["LAB_MODEL_FETCH_MS"]) / 1000
    assert measured_steps(cold)[0]["failure_ratio"] > 0.05, measured_steps(cold)
    assert measured_steps(baseline)[0]["failure_ratio"] == 0, measured_steps(baseline)
    assert peak(cold, "not_ready_rps") > 0  # the API took requests before its models were loaded
    assert peak(cold, "start_to_ready") >= fetch
    assert (baseline.peaks.get("not_ready_rps") or 0) == 0


def test_memory_bound_counts_its_oom_kills_and_restarts_names_the_verdict_and_explains_every_client_failure(
    experiment, mode
):
    """The leak takes the container to its memory limit: memory at 90% of it or more, the OOM killer's kills
    counted and each worker replaced, the verdict memory-bound, and every failure a client saw is a request a dead
    worker held (the balancer sends some of those again, so the clients see at most as many as the API lost)."""
    if mode == "native":
        pytest.skip("memory-bound needs a memory limit, which only the compose lab sets (LAB_PROOF_MODE=compose)")
    report = experiment("memory-bound")
    assert peak(report, "memory_utilization") >= 0.9
    kills = peak(report, "oom_kills")
    assert kills >= 1, "the OOM killer never killed: the leak did not reach the limit during the run"
    assert peak(report, "worker_restarts") >= kills  # every kill took a worker, and gunicorn replaced each
    assert report.verdict == "memory-bound", report.verdicts
    failures = report.failures()
    # No other kind of failure: no answer, or (while a worker restarts and the other takes all the load) slow.
    slow = sum(row["occurrences"] for row in failures if SLOWER_THAN_SLO in row["error"])
    assert sum(row["occurrences"] for row in failures) == report.no_answer() + slow, failures
    lost, retried = peak(report, "lost_requests"), report.peaks.get("balancer_retries") or 0
    assert lost - retried <= report.no_answer() <= lost, (failures, lost, retried)


def test_caching_answers_most_requests_from_its_shared_redis_and_holds_three_times_io_bound(experiment, mode):
    """io-bound with a shared Redis in front of its 2 threads, under a skewed catalog: the hit ratio reaches 0.8,
    and the API holds at least 3 times the RPS io-bound held within the SLO."""
    if mode == "native":
        pytest.skip("the caching scenario's Redis is a compose service (LAB_PROOF_MODE=compose)")
    cached, uncached = experiment("caching"), experiment("io-bound")
    assert peak(cached, "cache_hit_ratio") >= 0.8
    assert held_rps(cached) >= 3 * held_rps(uncached), (held_rps(cached), held_rps(uncached))
