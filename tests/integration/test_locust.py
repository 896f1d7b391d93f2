"""The real API (2 gunicorn workers) under a real distributed Locust (a master and 2 worker processes)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
from prometheus_client.utils import floatToGoString

from lab.api import running_api
from lab.exposition import parse, total
from lab.locust import distributed_locust, start_locust
from lab.paths import BIN, LOCUST_DIR, REPO
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, stop
from model_api.buckets import LATENCY_BUCKETS

USERS = 10
WORKER_REPORT_INTERVAL = 3.0  # locust.runners.WORKER_REPORT_INTERVAL
BUCKET = "lab_http_request_duration_seconds_bucket"
CLIENT_BUCKET = "locust_response_time_seconds_bucket"


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
    before, server_before = server_requests(api), parse(api.metrics())
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

    # Each answer took longer at the client than inside the API, so the client's histogram has at most as many
    # answers as the server's under every bound (over the same requests, its P99 cannot read below the API's).
    server_after = parse(api.metrics())
    for endpoint in ("/classify", "/predict"):
        for le in map(floatToGoString, LATENCY_BUCKETS):
            at_client = total(stopped, CLIENT_BUCKET, endpoint=endpoint, le=le)
            in_api = total(server_after, BUCKET, route=endpoint, le=le) - total(
                server_before, BUCKET, route=endpoint, le=le
            )
            assert at_client <= in_api, (
                f"{endpoint}: {at_client} answers within {le}s at the client, {in_api} in the API"
            )


def test_an_answer_just_over_a_bucket_bound_counts_over_it_at_the_client_as_in_the_api(tmp_path, model_dir):
    # 1.52 s answers: Locust's own rounding (to the nearest 100 ms) would store them as 1500 ms, under 1.5 s,
    # and make the client's P99 read faster than the API's.
    slow = {"LAB_HANDLER_STYLE": "async", "LAB_DOWNSTREAM_LATENCY_MS": "1520"}
    with running_api(tmp_path / "api", model_dir, workers=1, **slow) as slow_api:
        args = ["--autostart", "--autoquit", "30", "-u", "4", "-r", "4", "-t", "6s"]
        with distributed_locust(tmp_path, slow_api.url, workers=2, master_args=args, LOCUST_SLO_MS="5000") as run:
            run.wait(lambda: run.exporter()[("locust_runner_state", (("state", "stopped"),))] == 1, 60, "the stop")
            client = run.wait(settled(run), 30, "the workers' last reports to reach the master")
        server = parse(slow_api.metrics())
    assert total(client, "locust_response_time_seconds_count") >= 8, "too few answers to tell"
    for endpoint in ("/classify", "/predict"):
        answered = total(client, "locust_response_time_seconds_count", endpoint=endpoint)
        at_client = [total(client, CLIENT_BUCKET, endpoint=endpoint, le=le) for le in ("1.5", "2.0")]
        in_api = [total(server, BUCKET, route=endpoint, le=le) for le in ("1.5", "2.0")]
        assert at_client == [0, answered], f"{endpoint}: client buckets 1.5 s, 2 s: {at_client} of {answered}"
        assert in_api[0] == 0, f"{endpoint}: the API counted {in_api[0]} answers under 1.5 s"
        assert in_api[1] >= answered, f"{endpoint}: the API counted {in_api[1]} under 2 s, the client {answered}"


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


def test_the_breaking_point_stops_at_the_breach_and_its_summary_matches_locusts_csv(tmp_path, model_dir):
    # About 40 req/s of capacity (4 threads x 100 ms); users that send about 12 req/s each exceed it by step 3.
    slow = {"LAB_HANDLER_STYLE": "sync", "LAB_THREADPOOL_SIZE": "4", "LAB_DOWNSTREAM_LATENCY_MS": "100"}
    plan = {
        "LOCUST_SLO_MS": "400",
        "LOCUST_WAIT_MIN": "0.01",
        "LOCUST_WAIT_MAX": "0.05",
        "LOCUST_BP_START_USERS": "2",
        "LOCUST_BP_STEP_USERS": "3",
        "LOCUST_BP_STEP_SECONDS": "5",
        "LOCUST_BP_MAX_USERS": "30",
        "LOCUST_BP_SPAWN_RATE": "20",
    }
    with running_api(tmp_path / "api", model_dir, workers=1, **slow) as api, distributed_locust(
        tmp_path / "locust", api.url, workers=2, master_args=["--headless"],
        locustfile="locustfile.py,shapes/breaking_point.py", **plan,
    ) as run:  # fmt: skip
        run.master.wait(180)
        output = run.logs[0].read_text()  # the master's whole log

    summary = json.loads(Path(f"{run.csv_prefix}_breaking_point.json").read_text())
    held, breaking = summary["last_held"], summary["breaking_step"]
    assert "broke the SLO" in summary["result"], output
    assert held is not None, summary
    assert held["p99_ms"] <= 400 < breaking["p99_ms"] or breaking["failure_ratio"] > 0.01
    assert breaking["users"] == held["users"] + 3
    assert "breaking point:" in output

    with Path(f"{run.csv_prefix}_stats_history.csv").open() as rows:
        history = [row for row in csv.DictReader(rows) if row["Name"] == "Aggregated"]
    assert max(int(row["User Count"]) for row in history) == breaking["users"]
    during = [row for row in history if int(row["User Count"]) == held["users"]]
    counted = int(during[-1]["Total Request Count"]) - int(during[0]["Total Request Count"])
    seconds = float(during[-1]["Timestamp"]) - float(during[0]["Timestamp"])
    # The step was measured over part of the rows where its users ran (after their ramp): same rate, 1 s rows.
    assert held["requests"] <= counted + held["rps"] * 2
    assert abs(held["rps"] - counted / seconds) <= 0.25 * held["rps"]


def test_a_worker_started_before_its_master_joins_it_and_rejoins_a_restarted_master(tmp_path):
    master_port = free_port()
    worker_args = ["-f", "locustfile.py", "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    worker = start_locust(worker_args, tmp_path / "worker.log")

    def master(name: str):
        exporter_port = free_port()
        args = [
            "-f", "locustfile.py", "--master", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(master_port), "--web-host", "127.0.0.1", "--web-port", str(free_port()),
            "--exporter-port", str(exporter_port), "-H", "http://127.0.0.1:9",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{exporter_port}/metrics"
        return start_locust(args, tmp_path / f"{name}.log"), url

    def workers_seen(url: str) -> bool:
        return parse(httpx2.get(url, timeout=2).text)[("locust_workers", ())] == 1

    try:
        first, url = master("master-1")
        wait_for(lambda: workers_seen(url), 30, "the early worker to join the master")
        first.kill()  # the master is lost, not stopped: no goodbye to its workers
        first.wait(10)
        second, url = master("master-2")
        try:
            wait_for(lambda: workers_seen(url), 60, "the worker to rejoin the restarted master")
            assert worker.poll() is None, "the worker gave up instead of reconnecting"
        finally:
            stop(second)
    finally:
        stop(worker)
    assert "open file limit" not in (tmp_path / "master-1.log").read_text().lower()


def test_an_open_workload_keeps_its_pace_when_the_server_is_slow(tmp_path, model_dir):
    # Each answer takes 500 ms. One closed user (no think time) can send 2 a second; one open user at 8/s
    # sends 8 a second regardless, the requests overlapping in the client's connection pool. The pace is what
    # the API received, counted once its last request is answered: Locust's own count leaves out the requests
    # still in flight when the run ends, as many as the answers' latency on a busy machine.
    slow = {"LAB_HANDLER_STYLE": "async", "LAB_DOWNSTREAM_LATENCY_MS": "500"}
    runs = {"closed": {"LOCUST_WAIT_MIN": "0", "LOCUST_WAIT_MAX": "0"}, "open": {"LOCUST_OPEN_RATE": "8"}}
    received = {}
    with running_api(tmp_path / "api", model_dir, workers=1, **slow) as api:

        def classified() -> float:
            in_flight = "lab_http_requests_in_flight"
            wait_for(lambda: total(parse(api.metrics()), in_flight, route="/classify") == 0, 30, "no request in flight")
            return total(parse(api.metrics()), "lab_http_requests_total", route="/classify")

        for workload, env in runs.items():
            before = classified()
            subprocess.run(
                [
                    str(BIN / "locust"), "-f", "locustfile.py", "--headless", "-u", "1", "-r", "1", "-t", "6s",
                    "-H", api.url, "--only-summary", "--exporter-port", "0",
                ],
                cwd=LOCUST_DIR, env=clean_env(LOCUST_WORKLOAD=workload, LOCUST_HOUSE_WEIGHT="0", **env),
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            received[workload] = classified() - before

    assert received["closed"] <= 2 * 6 + 2
    assert received["open"] >= 0.75 * 8 * 6


def test_the_spike_goes_from_steady_to_burst_and_back_then_stops_by_itself(api, tmp_path):
    prefix = tmp_path / "spike"
    spike = {
        "LOCUST_SPIKE_BASE_USERS": "2", "LOCUST_SPIKE_PEAK_USERS": "8", "LOCUST_SPIKE_BASE_SECONDS": "4",
        "LOCUST_SPIKE_PEAK_SECONDS": "4", "LOCUST_SPIKE_RECOVERY_SECONDS": "4",
    }  # fmt: skip
    done = subprocess.run(
        [str(BIN / "locust"), "-f", "locustfile.py,shapes/spike.py", "--headless", "-H", api.url,
         "--csv", str(prefix), "--exporter-port", "0"],
        cwd=LOCUST_DIR, env=clean_env(**spike), capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with Path(f"{prefix}_stats_history.csv").open() as rows:
        users = [int(row["User Count"]) for row in csv.DictReader(rows) if row["Name"] == "Aggregated"]
    phases = [count for i, count in enumerate(users) if i == 0 or count != users[i - 1]]
    assert [count for count in phases if count in (2, 8)][:3] == [2, 8, 2]


def test_make_locust_workers_joins_the_master_at_master_host_and_ctrl_c_takes_them_away(tmp_path):
    """What a learner runs on a second machine, here against a master on 127.0.0.1: `make locust-workers` starts
    LOCUST_WORKERS workers that the master counts; Ctrl-C (SIGINT to the command's process group) ends them all,
    and the master counts none."""
    with distributed_locust(tmp_path, "http://127.0.0.1:9", workers=0, master_args=[]) as run:
        log = tmp_path / "make.log"
        make = subprocess.Popen(
            ["make", "--no-print-directory", "locust-workers", "MASTER_HOST=127.0.0.1",
             f"MASTER_PORT={run.master_port}", "LOCUST_WORKERS=2"],
            cwd=REPO, env=clean_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        run.logs.append(log)
        try:
            run.wait(lambda: run.stats()["worker_count"] == 2, 60, "the master to count make's 2 workers")
            assert "2 Locust workers for the master at 127.0.0.1" in log.read_text()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the learner's terminal
            make.wait(30)
        run.wait(lambda: run.stats()["worker_count"] == 0, 30, "the workers to leave the master")


def test_make_locust_workers_without_master_host_says_what_to_set_and_starts_nothing():
    done = subprocess.run(
        ["make", "--no-print-directory", "locust-workers"], cwd=REPO, env=clean_env(MASTER_HOST=None),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "MASTER_HOST is not set" in done.stderr
    assert "make locust-workers MASTER_HOST=" in done.stderr
    assert "locust" not in done.stdout  # no worker was started, nothing was installed
