"""The real API (2 gunicorn workers) under a real distributed Locust (a master and 2 worker processes)."""

from __future__ import annotations

import csv
import subprocess
import time

import pytest

from tests.support.locust import LOCUST_DIR, distributed_locust
from tests.support.metrics import parse, total
from tests.support.processes import BIN, clean_env, running_api

USERS = 10
WORKER_REPORT_INTERVAL = 3.0  # locust.runners.WORKER_REPORT_INTERVAL


@pytest.fixture(scope="module")
def api(tmp_path_factory, model_dir):
    with running_api(tmp_path_factory.mktemp("api"), model_dir, workers=2) as running:
        yield running


def settled(run):
    """A condition: the client's totals have not moved for longer than a worker's report interval (3 s)."""
    last = {"total": -1.0, "since": time.monotonic()}

    def check():
        samples = run.exporter()
        now_total = total(samples, "locust_requests_total")
        if now_total != last["total"]:
            last.update(total=now_total, since=time.monotonic())
            return None
        return samples if time.monotonic() - last["since"] > WORKER_REPORT_INTERVAL + 0.5 else None

    return check


def server_requests(api) -> float:
    samples = parse(api.metrics())
    return sum(total(samples, "lab_http_requests_total", route=route) for route in ("/classify", "/predict"))


def test_the_exporter_agrees_with_locust_and_the_api_agrees_with_the_client(api, tmp_path):
    before = server_requests(api)
    args = ["--autostart", "--autoquit", "30", "-u", str(USERS), "-r", str(USERS), "-t", "15s"]
    with distributed_locust(tmp_path, api.url, workers=2, master_args=args, LOCUST_WAIT_MAX="0.5") as run:
        running = run.wait(
            lambda: (s := run.exporter()) and s[("locust_users", ())] == USERS and s, 60, f"{USERS} users running"
        )
        assert running[("locust_workers", ())] == 2
        workers_seen = {dict(labels)["worker"] for name, labels in running if name == "locust_worker_cpu_percent"}
        assert len(workers_seen) == 2
        run.wait(lambda: run.exporter()[("locust_runner_state", (("state", "stopped"),))] == 1, 60, "the run to stop")
        stopped = run.wait(settled(run), 30, "the workers' last reports to reach the master")
        locust_view = run.stats()

    entries = {row["name"]: row for row in locust_view["stats"]}
    for endpoint in ("/classify", "/predict"):
        assert total(stopped, "locust_requests_total", endpoint=endpoint) == entries[endpoint]["num_requests"]
        assert total(stopped, "locust_failures_total", endpoint=endpoint) == entries[endpoint]["num_failures"]
        counted = total(stopped, "locust_response_time_seconds_count", endpoint=endpoint)
        assert counted == entries[endpoint]["num_requests"]
    client = total(stopped, "locust_requests_total")
    assert client > 100, "too little load to compare anything"
    assert total(stopped, "locust_failures_total") == 0
    served = server_requests(api) - before
    assert client <= served <= client + USERS  # at most one request per user was cut off in flight at the stop


def test_a_course_style_locustfile_runs_unmodified_without_failures(api, tmp_path):
    prefix = tmp_path / "course"
    done = subprocess.run(
        [
            str(BIN / "locust"), "-f", "examples/course_classify.py,examples/course_predict.py", "--headless",
            "-u", "4", "-r", "4", "-t", "8s", "-H", api.url, "--csv", str(prefix), "--only-summary",
        ],
        cwd=LOCUST_DIR, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["Name"]: row for row in csv.DictReader((prefix.parent / "course_stats.csv").open())}
    assert int(rows["Aggregated"]["Request Count"]) > 4
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert {"/classify", "/predict"} <= set(rows)
