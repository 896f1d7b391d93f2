"""The lab pointed at another service (docs/own-api.md), natively: the course's BentoML service (services/bentoml/,
as `make bentoml` runs it: one applicant per request, adaptive batching in a model worker of its own) on 127.0.0.1,
pinned to core 0 and so given a CPU limit of one core (LAB_TARGET_CPUS=1), loaded by the lab's Locust (master and 2
workers, pinned to core 1) running the course's locustfile unmodified; Debian's node and process exporters watching
the host and BentoML's processes; Debian's Prometheus scraping them all with the lab's rules, servers.yml reading
BentoML's series in the lab's words.

BentoML's capacity is measured first, by wrk on core 1 for 10 s; "twice its capacity" is then that many requests a
second, twice over, asked by the course's users (each thinks about 1 s between requests).
"""

from __future__ import annotations

import json
import time

import pytest

from benchmarks.wrk import Wrk, write_lua
from grafana.dashboard import DASHBOARD_FILE
from lab.bentoml_service import running_bentoml
from lab.grafana import panel_queries, substitute
from lab.grafana import template_values as dashboard_template_values
from lab.own_api import own_api_lab
from lab.paths import LOCUST_DIR
from lab.polling import wait_for
from lab.processes import clean_env
from model_api import data
from tests.support import tools
from tests.support.course import COURSE_LOCUSTFILE, COURSE_USER, COURSE_WAIT_SECONDS

# BentoML's start, the lab's, a slow swarm, a capacity measurement and a swarm at twice it held until the verdict.
pytestmark = pytest.mark.timeout(420)

SERVICE_CORE, LOAD_CORE = "0", "1"
# The course's file as Locust runs it from locust/, and the lab's exporter beside it.
LOCUSTFILES = f"{COURSE_LOCUSTFILE.relative_to(LOCUST_DIR)},lab_plugin.py"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())


@pytest.fixture(scope="module")
def bentoml_service(tmp_path_factory, model_dir):
    tools.bentoml()
    with running_bentoml(tmp_path_factory.mktemp("bentoml"), model_dir, cores=SERVICE_CORE) as service:
        yield service


@pytest.fixture(scope="module")
def lab(bentoml_service, tmp_path_factory):
    tools.prometheus()
    tools.host_exporters()
    with own_api_lab(
        tmp_path_factory.mktemp("own-api"), bentoml_service.url, locustfile=LOCUSTFILES,
        locust_cores=LOAD_CORE, target_cpus=1,
    ) as running:  # fmt: skip
        yield running


def course_swarm(lab, users: int, **form) -> None:
    lab.start_swarm(user_count=users, spawn_rate=users, user_classes=[COURSE_USER], **form)


def test_the_course_locustfile_below_capacity_fails_nothing_and_prometheus_reads_bentoml_and_its_processes(lab):
    """10 course users (about 10 req/s, a small share of what BentoML serves) for 20 s: Locust counts no failure;
    Prometheus scrapes BentoML's /metrics, the exporters and Locust, and reads BentoML as the lab's own: its server
    is `bentoml`, its requests and its processes' CPU are there, and what BentoML does not measure is not."""
    lab.swarm(users=10, spawn_rate=10, seconds=20, user_classes=[COURSE_USER])

    total = lab.locust_stats()["stats"][-1]
    assert total["num_requests"] > 50, total
    assert total["num_failures"] == 0, lab.locust_stats()["errors"]
    up = wait_for(lambda: (t := lab.prometheus.targets_up()) and len(t) == 5 and t, 60, "five targets scraped")
    assert up == {"target": 1.0, "node": 1.0, "process": 1.0, "locust": 1.0, "prometheus": 1.0}
    assert lab.query('job:lab_server:info{server="bentoml"}')
    served = wait_for(lambda: lab.value('sum(lab_http_requests_total{route="/classify",status="200"})'), 30,
                      "BentoML's /classify count, in the lab's words")  # fmt: skip
    assert served >= total["num_requests"] - 10  # at most one request a user in flight when the swarm stopped
    processes = lab.query("lab_worker_cpu_seconds_total")
    assert len(processes) >= 2, processes  # CreditRisk's process and CreditModel's worker, at least
    assert not lab.query("job:lab_event_loop_lag_seconds:mean_rate30s"), "BentoML does not measure it: unavailable"


def test_twice_bentomls_capacity_is_cpu_bound_and_its_batch_size_and_p99_are_on_the_dashboard(
    lab, bentoml_service, tmp_path
):
    """wrk measures what BentoML serves flat out on its core; course users asking twice that: the verdict is
    cpu-bound, and the dashboard's batch size and server P99 panels have data."""
    tools.require("wrk", "wrk", "LAB_REQUIRE_WRK")
    script = write_lua(tmp_path, "course-applicant", data.COURSE_APPLICANT)
    flat_out = Wrk(clean_env(), {"/classify": script}).run("capacity", bentoml_service.url, "/classify", 32, 10, 1)
    capacity = (flat_out.requests - flat_out.non_2xx) / flat_out.duration_s  # BentoML sheds past its budget: 503
    users = max(20, round(2 * capacity * COURSE_WAIT_SECONDS))
    print(f"BentoML answered {capacity:.0f} req/s flat out; {users} course users ask for about twice that")

    started = time.time()
    course_swarm(lab, users)
    try:
        wait_for(lambda: lab.query('job:lab_diagnosis:verdict{verdict="cpu-bound"}'), 150, "the verdict cpu-bound", 1)
        values = dashboard_template_values(
            DASHBOARD, lambda label, selector: lab.prometheus.label_values(label, selector)
        )
        wanted = ("lab_batch_size", "route:lab_http_request_duration_seconds:p99_rate30s")
        panels = [(name, substitute(expr, values)) for name, expr in panel_queries(DASHBOARD)
                  if any(series in expr for series in wanted)]  # fmt: skip
        assert len(panels) >= 2, panels
        for name, query in panels:
            series = lab.prometheus.query_between(query, started, time.time())
            assert series, f"{name}: no data\n{query}"
        print(f"busiest BentoML process: {lab.value('max(pid:lab_worker_cpu:rate30s)')} of a core; all of them: "
              f"{lab.value('max(instance:lab_cpu_utilization:ratio_rate30s)')} of its one core")  # fmt: skip
    finally:
        lab.stop_swarm()
