"""Proof: the lab as a Docker Swarm stack (swarm.yaml merged over compose.yaml by lab/swarm.py), on a swarm of one
node made of this test's Docker engine: deployed, scaled as docs/scaling.md says, swarmed, and removed.

A swarm this test initialised is left at the end; an engine that was already a swarm manager stays one, and only
this test's stack goes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from grafana.dashboard import DASHBOARD_FILE
from lab import swarm
from lab.grafana import annotation_queries
from lab.polling import wait_for
from tests.support.compose import build_images, require_docker

pytestmark = pytest.mark.timeout(900)
# The dashboard's marks of a scaling, as Grafana asks Prometheus for them.
SCALING_MARKS = ("API workers changed", "Locust workers changed")


@pytest.fixture(scope="module")
def single_node_swarm() -> Iterator[None]:
    require_docker()
    state = swarm.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    if state == "inactive":
        # 127.0.0.1: nothing of this swarm is offered to the network.
        swarm.docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=60)
    problem = swarm.swarm_problem()
    assert problem is None, problem
    try:
        yield
    finally:
        if state == "inactive":
            swarm.docker("swarm", "leave", "--force", timeout=60)


def test_the_stack_scales_to_two_api_tasks_and_three_locust_workers_that_prometheus_and_the_master_both_see(
    single_node_swarm, tmp_path
):
    build_images()
    with swarm.swarm_lab(f"labswarm{os.getpid()}", tmp_path / "reports") as lab:
        assert lab.replicas()["api"] == "1/1"
        assert lab.replicas()["locust-worker"] == "2/2"
        scaled_at = time.time()

        lab.scale(api=2, locust_worker=3)

        wait_for(
            lambda: lab.replicas()["api"] == "2/2" and lab.replicas()["locust-worker"] == "3/3",
            180,
            "2 API tasks and 3 Locust workers to run",
            interval=2,
        )
        targets = wait_for(
            lambda: (up := lab.query('up{job="model-api"} == 1')) and len(up) == 2 and up,
            60,
            "Prometheus to scrape both API tasks (tasks.api)",
            interval=1,
        )
        wait_for(lambda: lab.locust_stats()["worker_count"] == 3, 90, "the Locust master to count 3 workers", 1)

        lab.swarm(users=10, spawn_rate=10, seconds=15)

        # Through the balancer (tasks.api), both tasks served the swarm's requests.
        served = wait_for(
            lambda: (
                (rows := lab.query('sum by (instance) (increase(lab_http_requests_total{route="/classify"}[1m]))'))
                and len(rows) == 2
                and all(float(row["value"][1]) > 0 for row in rows)
                and rows
            ),
            30,
            "both API tasks to have served /classify requests",
            interval=1,
        )
        assert {row["metric"]["instance"] for row in served} == {row["metric"]["instance"] for row in targets}
        stats = lab.locust_stats()
        assert stats["stats"][-1]["num_requests"] > 20
        assert stats["stats"][-1]["num_failures"] == 0
        # The dashboard marks both scalings.
        queries = dict(annotation_queries(json.loads(DASHBOARD_FILE.read_text())))
        for name in SCALING_MARKS:
            marks = lab.prometheus.query_between(queries[name], scaled_at - 5, time.time())
            assert marks, f"no samples for the '{name}' annotation"
            assert max(float(v) for _, v in marks[0]["values"]) == 1, f"no '{name}' mark since the scaling"
