"""The lab on a real Docker engine: compose files valid, the stack up and scraped, a swarm, scaling, limits.

Grafana joins only where its image is present (no registry here, and no stand-in for it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from experiments.stack import api_service
from tests.support.compose import ComposeLab, build_images, require_docker, running_lab
from tests.support.processes import REPO
from tests.support.waiting import wait_for

SCENARIOS = sorted(path.stem for path in (REPO / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("scenario", [None, *SCENARIOS], ids=lambda s: s or "compose.yaml alone")
def test_docker_compose_config_is_valid(scenario):
    require_docker()
    files = ["-f", "compose.yaml", *(["-f", f"scenarios/{scenario}.yaml"] if scenario else [])]
    done = subprocess.run(
        ["docker", "compose", *files, "config", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_native_run_gives_the_api_what_compose_gives_it(scenario, monkeypatch):
    """The native experiment reads compose.yaml, the override and the variables itself: it must agree with compose."""
    require_docker()
    monkeypatch.setenv("API_WORKERS", "3")  # a knob from the shell wins over .env, unless the scenario pins it
    monkeypatch.setenv("LAB_DOWNSTREAM_JITTER_MS", "7")
    monkeypatch.setenv("LAB_BATCH_MAX_WAIT_MS", "")  # set but empty: ${VAR:-default} takes the default
    files = ["-f", "compose.yaml", "-f", f"scenarios/{scenario}.yaml"]
    done = subprocess.run(
        ["docker", "compose", *files, "config", "--format", "json"], cwd=REPO, env=os.environ, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    api = json.loads(done.stdout)["services"]["api"]
    native = api_service(scenario)
    assert {**native.environment, "WEB_CONCURRENCY": str(native.workers)} == api["environment"]
    assert native.cpus == float(api["cpus"])


@pytest.fixture(scope="module")
def images():
    build_images()


@pytest.fixture(scope="module")
def lab(images):
    with running_lab("lab-test", scale={"api": 2, "locust-worker": 2}) as running:
        yield running


def test_prometheus_scrapes_both_api_replicas_and_the_locust_exporter(lab: ComposeLab):
    def targets():
        up = lab.query("up")
        jobs = [(s["metric"]["job"], s["value"][1]) for s in up]
        return jobs if jobs.count(("model-api", "1")) == 2 and ("locust", "1") in jobs else None

    jobs = wait_for(targets, 90, "two API targets and the Locust exporter up", interval=1)
    assert ("prometheus", "1") in jobs


def test_a_distributed_swarm_is_counted_by_the_api_and_the_exporter(lab: ComposeLab):
    wait_for(lambda: lab.value("max(locust_workers)") == 2, 90, "the exporter to report 2 workers", interval=1)

    lab.swarm(users=10, spawn_rate=5, seconds=20)

    served = wait_for(
        lambda: lab.value('sum(lab_http_requests_total{route=~"/classify|/predict"})'), 30, "API requests", interval=1
    )
    sent = wait_for(lambda: lab.value("sum(locust_requests_total)"), 30, "Locust requests", interval=1)
    assert served > 0
    assert sent > 0
    assert lab.value("max(locust_workers)") == 2
    replicas = lab.query('sum by (instance) (lab_http_requests_total{route=~"/classify|/predict"})')
    assert len(replicas) == 2, "both API replicas served requests"
    stats = (lab.reports / "run_stats.csv").read_text()
    assert "/classify" in stats, "the master wrote its CSV report to the bind-mounted folder"


def test_scaling_locust_workers_does_not_restart_the_master(lab: ComposeLab):
    (master,) = lab.container_ids("locust-master")
    started = lab.started_at(master)
    apis = lab.container_ids("api")

    lab.compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "locust-worker=3", "locust-worker")

    wait_for(lambda: lab.value("max(locust_workers)") == 3, 90, "the exporter to report 3 workers", interval=1)
    assert lab.container_ids("locust-master") == [master]
    assert lab.started_at(master) == started
    assert lab.container_ids("api") == apis


def test_containers_run_as_non_root_and_bind_the_host_to_127_0_0_1(lab: ComposeLab):
    for service in ["api", "prometheus", "locust-master"]:
        container = lab.container_ids(service)[0]
        user = subprocess.run(
            ["docker", "exec", container, "id", "-u"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        assert user != "0", f"{service} runs as root"
    ports = lab.compose("ps", "--format", "{{.Publishers}}").stdout
    assert "0.0.0.0" not in ports
    assert "127.0.0.1" in ports


def test_each_api_replica_has_the_cpu_limit_from_env_and_its_metrics_in_a_tmpfs(lab: ComposeLab):
    limits = wait_for(lambda: (r := lab.query("lab_container_cpu_limit_cores")) and len(r) == 2 and r, 60, "limits")
    assert [float(series["value"][1]) for series in limits] == [1.0, 1.0]
    container = lab.container_ids("api")[0]
    mounts = subprocess.run(
        ["docker", "exec", container, "python", "-c", "print(open('/proc/mounts').read())"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert re.search(r"^tmpfs /tmp/prometheus-multiproc tmpfs ", mounts, re.M), mounts


def test_locust_does_not_warn_about_the_open_file_limit(lab: ComposeLab):
    logs = lab.compose("logs", "--no-color", "locust-master", "locust-worker").stdout
    assert "Starting Locust" in logs
    assert "open file limit" not in logs
