"""The diagnosis from the server's side: whoever sends the load, the lab tells CPU-bound from I/O-bound.

Real processes on 127.0.0.1: the API under gunicorn, one sync (or async) worker pinned to core 0 as a 1-CPU
limit is stood in for natively, Debian's Prometheus with the lab's rules, and a load pinned to the other core.
The load is the course's own locustfile (a plain HttpUser, no lab imports, so no Locust series reach
Prometheus at all), Debian's wrk, or the lab's own Locust with 150 users started at once. Loads are sized from
what one prediction costs on this machine (/readyz's model_ms), so each is about twice one core's capacity,
whatever the core's speed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from benchmarks.wrk import write_lua
from lab.api import RunningApi, running_api
from lab.locust import distributed_locust
from lab.native import host
from lab.paths import BIN, REPO
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, pinned, stop
from lab.prometheus import RunningPrometheus, running_prometheus
from model_api import data
from tests.support.course import COURSE_LOCUSTFILE, COURSE_WAIT_SECONDS
from tests.support.tools import promtool, require

# Each test starts its own API and Prometheus and holds a load until the verdict has held 20 s: four evaluations in a
# row, twice the two that the verdict's hysteresis needs to change it.
pytestmark = pytest.mark.timeout(420)

API_CORE, LOAD_CORE = "0", "1"
HELD_SECONDS = 20


@dataclass
class Diagnosed:
    api: RunningApi
    prometheus: RunningPrometheus
    workdir: Path

    def verdict(self) -> str | None:
        found = self.prometheus.query("job:lab_diagnosis:verdict")
        return found[0]["metric"]["verdict"] if found else None

    def evaluated_at(self) -> float:
        """When the rules last ran (the settled-traffic signal exists with or without traffic)."""
        found = self.prometheus.query("timestamp(job:lab_traffic_settled:bool)")
        return float(found[0]["value"][1]) if found else 0.0

    def samples(self, expr: str, start: float, end: float) -> dict[float, dict[str, str]]:
        """Each evaluation step's series between start and end: time -> the labels of the series there."""
        found = self.prometheus.query_between(expr, start, end)
        return {float(t): {**s["metric"], "value": v} for s in found for t, v in s["values"]}

    def verdicts(self, start: float, end: float) -> dict[float, str]:
        """The verdict at each evaluation step between start and end (a step with none is left out)."""
        return {t: s["verdict"] for t, s in self.samples("job:lab_diagnosis:verdict", start, end).items()}

    def history(self, since: float) -> str:
        """The candidate verdict and the figures behind it at each evaluation since `since`, for a failure."""
        exprs = {
            "candidate": "job:lab_diagnosis:candidate",
            "settled": "job:lab_traffic_settled:bool",
            "lag": "job:lab_event_loop_lag_seconds:mean_rate30s",
            "cpu": "max(instance:lab_cpu_utilization:ratio_rate30s)",
            "wait/served": "job:lab_request_wait_per_service:ratio_rate30s",
            "up": 'up{job="model-api"}',
        }
        columns = {name: self.samples(expr, since, time.time()) for name, expr in exprs.items()}
        times = sorted({t for column in columns.values() for t in column})
        return "\n".join(
            f"{t - since:5.0f}s " + " ".join(
                f"{name}={(c.get(t) or {}).get('verdict') or (c.get(t) or {}).get('value', '-')}"
                for name, c in columns.items()
            )
            for t in times
        )  # fmt: skip

    def capacity_users(self, think_seconds: float) -> int:
        """Users that ask for about twice what one core computes: each asks once per think time (the answers of a
        saturated API are slow, so this over-asks a little less)."""
        model_ms = httpx2.get(f"{self.api.url}/readyz", timeout=5).json()["model_ms"]["/classify"]
        return max(20, min(300, round(2 * think_seconds * 1000 / model_ms)))

    def holds(self, verdict: str, seconds: float = HELD_SECONDS, first_within: float = 120) -> None:
        """The verdict appears within `first_within` s and is the verdict at every evaluation for `seconds`."""
        began = time.time()
        try:
            wait_for(lambda: self.verdict() == verdict, first_within, f"the verdict {verdict}", interval=1)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; the candidates were:\n{self.history(began)}") from None
        since = time.time()
        wait_for(lambda: self.evaluated_at() >= since + seconds, seconds + 30, f"{seconds}s of evaluations", 1)
        seen = self.verdicts(since, since + seconds)
        assert len(seen) >= seconds // 5, seen
        assert set(seen.values()) == {verdict}, seen


@contextmanager
def diagnosed(workdir: Path, model_dir: Path, **api_env: str) -> Iterator[Diagnosed]:
    """One API worker on core 0, and Prometheus scraping it; its Locust target is a port nothing listens on."""
    promtool()
    with (
        running_api(workdir / "api", model_dir, workers=1, cores=API_CORE, **api_env) as api,
        running_prometheus(workdir, [host(api.url)], f"127.0.0.1:{free_port()}") as prometheus,
    ):
        yield Diagnosed(api, prometheus, workdir)


@contextmanager
def load(command: list[str], log: Path, cwd: Path = REPO) -> Iterator[subprocess.Popen[bytes]]:
    """A load generator on the core the API does not use, stopped (if still running) on the way out."""
    process = subprocess.Popen(
        pinned(command, LOAD_CORE), cwd=cwd, env=clean_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        stop(process, timeout=20)


def course_locust(lab: Diagnosed, users: int, seconds: int) -> list[str]:
    """The course's locustfile as a learner runs it: `locust -f`, headless, nothing of the lab's."""
    return [str(BIN / "locust"), "-f", str(COURSE_LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
            "-t", f"{seconds}s", "-H", lab.api.url, "--only-summary"]  # fmt: skip


def test_course_locustfile_at_twice_the_cores_capacity_is_cpu_bound_and_zero_traffic_has_no_verdict(
    tmp_path, model_dir
):
    with diagnosed(tmp_path, model_dir) as lab:
        started = time.time()
        wait_for(lambda: lab.evaluated_at() >= started + 15, 60, "three evaluations of the rules without traffic", 1)
        assert lab.verdict() is None
        assert not lab.prometheus.query("locust_requests_total")

        users = lab.capacity_users(COURSE_WAIT_SECONDS)
        with load(course_locust(lab, users, 150), tmp_path / "locust.log"):
            lab.holds("cpu-bound")
            assert not lab.prometheus.query("{__name__=~'locust_.+'}"), "no client-side series: the server decided"


# Slow downstream, 4 threads: 4 x 2 requests a second = 8 req/s, whose CPU stays low even on a slow core
# (8 x 39 ms = 31%); 60 users ask for about 40.
# Blocking async handler: one request at a time, 200 ms each, 5 req/s at most; 4 users ask for about 3.3, so the
# loop is blocked two thirds of the time. (Not more: with every user waiting in the loop's queue, Prometheus's
# scrape, which the same loop answers, waits behind them past its 5 s timeout, and the lab sees nothing at all.)
@pytest.mark.parametrize(
    ("api_env", "users", "verdict"),
    [
        ({"LAB_DOWNSTREAM_LATENCY_MS": "500", "LAB_THREADPOOL_SIZE": "4"}, 60, "io-bound"),
        ({"LAB_HANDLER_STYLE": "async-blocking", "LAB_DOWNSTREAM_LATENCY_MS": "200"}, 4, "event-loop-blocked"),
    ],
    ids=["slow downstream, four threads", "blocking async handler"],
)
def test_course_locustfile_against_a_wait_is_told_apart_from_a_cpu_shortage(
    tmp_path, model_dir, api_env, users, verdict
):
    with (
        diagnosed(tmp_path, model_dir, **api_env) as lab,
        load(course_locust(lab, users, 150), tmp_path / "locust.log"),
    ):
        lab.holds(verdict)


def test_wrk_with_no_locust_at_all_is_cpu_bound(tmp_path, model_dir):
    wrk = require("wrk", "wrk", "LAB_REQUIRE_WRK")
    script = write_lua(tmp_path, "applicant", data.COURSE_APPLICANT)
    # 8 connections, each sending its next request as soon as the last is answered: always 8 in the API
    command = [wrk, "-t1", "-c8", "-d150s", "--timeout", "10s", "-s", str(script)]
    with (
        diagnosed(tmp_path, model_dir) as lab,
        load([*command, f"{lab.api.url}/classify"], tmp_path / "wrk.log"),
    ):
        lab.holds("cpu-bound")


def test_the_labs_locust_with_150_users_at_once_names_a_bottleneck_while_the_worker_is_at_its_cpu_limit(
    tmp_path, model_dir
):
    promtool()
    args = ["--autostart", "-u", "150", "-r", "150", "-t", "150s"]
    with (
        running_api(tmp_path / "api", model_dir, workers=1, cores=API_CORE) as api,
        distributed_locust(tmp_path / "locust", api.url, workers=2, master_args=args, cores=LOAD_CORE) as run,
        running_prometheus(tmp_path, [host(api.url)], host(run.exporter_url)) as prometheus,
    ):
        lab = Diagnosed(api, prometheus, tmp_path)
        wait_for(lambda: lab.verdict() is not None, 120, "a first verdict", interval=1)
        since = time.time()
        wait_for(lambda: lab.evaluated_at() >= since + 60, 100, "a minute of evaluations", interval=1)
        verdicts = lab.verdicts(since, since + 60)
        worker_cpu = {t: float(s["value"]) for t, s in lab.samples("max(pid:lab_worker_cpu:rate30s)", since,
                                                                     since + 60).items()}  # fmt: skip
    at_limit = [t for t, cpu in worker_cpu.items() if cpu > 0.75]
    assert len(at_limit) >= 6, f"the worker was at its CPU limit too briefly to judge: {worker_cpu}"
    judged = {t: verdicts.get(t) for t in at_limit}
    assert all(v not in (None, "healthy") for v in judged.values()), judged
