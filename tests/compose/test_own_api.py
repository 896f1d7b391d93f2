"""Proof: own-api.yaml on a real Docker engine. The lab comes up without its API and balancer, pointed at a service
on this machine: the course's BentoML service, started natively as `make bentoml` starts it but bound to the
docker0 bridge's address, which is where host.docker.internal (extra_hosts: host-gateway) takes the containers on
Linux. Prometheus scrapes BentoML, the node exporter and the process exporter, whose groups are BentoML's own
processes seen through the host's process table; a few course users reach BentoML through Locust.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from lab.bentoml_service import running_bentoml
from lab.compose import OWN_API_SERVICES, compose_lab
from lab.paths import LOCUST_DIR, REPO
from lab.polling import wait_for
from tests.support import tools
from tests.support.compose import require_docker
from tests.support.course import COURSE_LOCUSTFILE, COURSE_USER

# The exporters' image (Debian's packages) on the first run, BentoML's start, the lab's, a short swarm.
pytestmark = pytest.mark.timeout(600)


def docker0_address() -> str:
    """The default bridge's gateway: this machine as the containers reach it through host-gateway."""
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_own_api_brings_the_lab_up_without_its_api_and_prometheus_holds_the_targets_and_the_exporters_series(
    tmp_path, model_dir
):
    require_docker()
    tools.bentoml()
    with running_bentoml(tmp_path / "bentoml", model_dir, host=docker0_address()) as service:
        port = service.url.rsplit(":", 1)[1]
        target = f"http://host.docker.internal:{port}"
        with (
            tempfile.TemporaryDirectory(prefix="own-api-") as reports,
            compose_lab(
                "lab-own-api", Path(reports), overrides=[REPO / "own-api.yaml"], services=OWN_API_SERVICES,
                LAB_TARGET=target, LOCUST_LOCUSTFILE=str(COURSE_LOCUSTFILE.relative_to(LOCUST_DIR)),
            ) as lab,
        ):  # fmt: skip
            assert lab.container_ids("api") == lab.container_ids("balancer") == []
            jobs = {"target", "node", "process", "locust", "prometheus"}
            up = wait_for(lambda: (t := lab.prometheus.targets_up()) and set(t) == jobs and t, 60, "five jobs")
            assert up == dict.fromkeys(jobs, 1.0), up

            lab.swarm(users=4, spawn_rate=4, seconds=10, user_classes=[COURSE_USER])

            assert lab.locust_stats()["stats"][-1]["num_requests"] > 5
            assert lab.locust_stats()["stats"][-1]["num_failures"] == 0, lab.locust_stats()["errors"]
            for series in (
                'bentoml_service_request_total{job="target",endpoint="/classify"}',  # the target's own
                'lab_http_requests_total{route="/classify"}',  # and in the lab's words (servers.yml)
                'job:lab_server:info{server="bentoml"}',
                'node_cpu_seconds_total{job="node",mode="idle"}',  # the host's
                'namedprocess_namegroup_cpu_seconds_total{job="process",groupname=~"target:.+"}',  # BentoML's
                'instance:lab_cpu_utilization:ratio_rate30s{instance="target"}',
            ):
                assert wait_for(lambda s=series: lab.query(s), 30, f"{series} in Prometheus", interval=1)
