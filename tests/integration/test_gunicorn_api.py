"""The real API under gunicorn with several workers, on a free 127.0.0.1 port: metrics add up across workers,
survive a killed worker, and are scraped even while every thread is busy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx2
import psutil
import pytest

from lab.api import running_api, start_gunicorn
from lab.exposition import counter_types, parse, total
from lab.polling import wait_for
from lab.processes import stop
from model_api import data
from model_api.artifacts import METADATA
from model_api.vocabulary import MODEL_RUNTIMES


def post(url: str, path: str, body: dict) -> httpx2.Response:
    return httpx2.post(url + path, json=body, timeout=30)  # a new connection each time, so workers take turns


def served_runtime(url: str) -> str:
    """The model runtime that the worker answering /readyz (on a new connection) says it serves with."""
    return httpx2.get(url + "/readyz", timeout=5).json()["model_runtime"]


@pytest.fixture(scope="module")
def api(tmp_path_factory, model_dir):
    with running_api(tmp_path_factory.mktemp("api"), model_dir, workers=2) as running:
        yield running


def test_requests_spread_over_both_workers_are_counted_exactly_once(api):
    before = total(parse(api.metrics()), "lab_http_requests_total", route="/classify")
    applicants = data.applicants(seed=11)
    answered_by: list[str] = []

    def send_batch() -> bool:
        bodies = [next(applicants) for _ in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for response in pool.map(lambda body: post(api.url, "/classify", body), bodies):
                assert response.status_code == 200, response.text
                answered_by.append(response.headers["x-worker-pid"])
        return len(set(answered_by)) == 2

    wait_for(send_batch, timeout=60, what="both workers to answer requests", interval=0)

    after = total(parse(api.metrics()), "lab_http_requests_total", route="/classify")
    assert set(answered_by) == {str(pid) for pid in api.worker_pids()}
    assert after - before == len(answered_by)


def test_every_scrape_reports_both_workers_whichever_answers(api):
    for _ in range(10):
        samples = parse(api.metrics())
        assert samples[("lab_workers", ())] == 2
        pids = {dict(labels)["pid"] for name, labels in samples if name == "lab_worker_cpu_seconds_total"}
        assert pids == {str(pid) for pid in api.worker_pids()}
        assert total(samples, "lab_threadpool_threads_capacity") == 80  # 40 threads in each of 2 workers


def test_a_killed_worker_is_respawned_requests_keep_succeeding_and_no_counter_goes_down(api):
    for body in [data.COURSE_APPLICANT] * 10:
        assert post(api.url, "/classify", body).status_code == 200
    text_before = api.metrics()
    before = parse(text_before)
    counters = counter_types(text_before)
    old_pids = api.worker_pids()
    victim = old_pids[0]
    ready_before = api.output().count("Application startup complete")

    os.kill(victim, signal.SIGKILL)
    statuses: list[int | str] = []

    def replaced() -> bool:
        try:  # keep serving meanwhile; a lost request is recorded, not taken by wait_for for "not yet"
            statuses.append(post(api.url, "/predict", data.COURSE_HOUSE).status_code)
        except httpx2.TransportError as error:
            statuses.append(type(error).__name__)
        pids = api.worker_pids()
        return (
            len(pids) == 2 and victim not in pids and api.output().count("Application startup complete") > ready_before
        )

    wait_for(replaced, timeout=60, what="gunicorn to replace the killed worker")
    statuses += [post(api.url, "/classify", data.COURSE_APPLICANT).status_code for _ in range(20)]
    after = parse(api.metrics())

    assert set(statuses) == {200}
    assert after[("lab_workers", ())] == 2
    went_down = {
        key: (value, after.get(key))
        for key, value in before.items()
        if key[0] in counters and ("pid", str(victim)) not in key[1] and after.get(key, -1) < value
    }
    assert not went_down, f"counters that decreased or vanished: {went_down}"
    assert (
        total(after, "lab_http_requests_total", route="/classify")
        >= total(before, "lab_http_requests_total", route="/classify") + 20
    )
    pids_reported = {dict(labels)["pid"] for name, labels in after if name == "lab_worker_event_loop_lag_seconds"}
    assert str(victim) not in pids_reported, "the dead worker's live gauge is still exposed"


def test_natively_the_api_reports_its_own_cpu_against_the_cores_it_is_pinned_to(tmp_path, model_dir):
    # Natively the cgroup is shared with everything else, as Locust would be: a process outside the API burns
    # 1.5 s of CPU, which must not show up as the API's.
    burner = [
        sys.executable,
        "-c",
        "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass",
    ]
    with running_api(tmp_path, model_dir, workers=2, cores="0") as api:
        subprocess.run(burner, check=True, timeout=60)
        samples = parse(api.metrics())
        own = api.cpu_seconds()
        resident = sum(
            p.memory_info().rss for p in [psutil.Process(api.process.pid), *psutil.Process(api.process.pid).children()]
        )

    assert samples[("lab_container_cpu_limit_cores", ())] == 1
    assert own - 0.5 <= samples[("lab_container_cpu_usage_seconds_total", ())] <= own + 0.1
    assert samples[("lab_container_memory_usage_bytes", ())] == pytest.approx(resident, rel=0.2)


def test_bad_input_over_the_wire_is_a_4xx_never_a_5xx(api):
    oversized = httpx2.post(
        api.url + "/classify", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
    )
    chunked = httpx2.post(
        api.url + "/classify",
        content=iter([b" " * 8192] * 10),
        headers={"content-type": "application/json"},
    )
    malformed = httpx2.post(api.url + "/classify", content=b"{nope", headers={"content-type": "application/json"})
    wrong = post(api.url, "/classify", {**data.COURSE_APPLICANT, "job": "pirate"})

    assert (oversized.status_code, chunked.status_code, malformed.status_code, wrong.status_code) == (
        413,
        413,
        422,
        422,
    )
    assert wrong.json()["detail"][0]["field"] == "job"
    errors = total(parse(api.metrics()), "lab_http_requests_total", route="/classify", status="500")
    assert errors == 0


def test_metrics_are_scraped_while_every_thread_is_busy(tmp_path, model_dir):
    slow = {"LAB_HANDLER_STYLE": "sync", "LAB_THREADPOOL_SIZE": "2", "LAB_DOWNSTREAM_LATENCY_MS": "2500"}
    with running_api(tmp_path, model_dir, workers=1, **slow) as api, ThreadPoolExecutor(max_workers=5) as pool:
        pending = [pool.submit(post, api.url, "/classify", data.COURSE_APPLICANT) for _ in range(5)]

        def saturated() -> dict | None:
            samples = parse(api.metrics())
            busy = total(samples, "lab_threadpool_threads_busy")
            waiting = total(samples, "lab_threadpool_tasks_waiting")
            return samples if busy == 2 and waiting >= 1 else None

        samples = wait_for(saturated, timeout=10, what="the threadpool to be saturated")

        assert not any(future.done() for future in pending), "the scrape was only answered after requests finished"
        assert total(samples, "lab_http_requests_in_flight", route="/classify") == 5
        assert httpx2.get(api.url + "/healthz", timeout=2).status_code == 200
        assert [future.result().status_code for future in pending] == [200] * 5  # none lost


def test_a_graceful_stop_answers_the_requests_in_flight(tmp_path, model_dir):
    api = start_gunicorn(tmp_path, model_dir, workers=1, LAB_HANDLER_STYLE="async", LAB_DOWNSTREAM_LATENCY_MS="1500")
    process, url = api.process, api.url
    try:
        wait_for(lambda: httpx2.get(url + "/readyz", timeout=2).status_code == 200, 60, "the API")
        with ThreadPoolExecutor(max_workers=6) as pool:
            pending = [pool.submit(post, url, "/classify", data.COURSE_APPLICANT) for _ in range(6)]
            wait_for(
                lambda: (
                    total(parse(httpx2.get(url + "/metrics").text), "lab_http_requests_in_flight", route="/classify")
                    == 6
                ),
                timeout=10,
                what="six requests in flight",
            )
            process.send_signal(signal.SIGTERM)
            statuses = [future.result().status_code for future in pending]
        assert statuses == [200] * 6
        assert process.wait(30) == 0
    finally:
        stop(process)


@pytest.mark.parametrize("model_runtime", MODEL_RUNTIMES)
def test_batching_under_gunicorn_groups_requests_and_answers_each_its_own(tmp_path, model_dir, model_runtime):
    runtime = {"LAB_MODEL_RUNTIME": model_runtime}
    env = {**runtime, "LAB_HANDLER_STYLE": "async", "LAB_BATCHING": "true", "LAB_BATCH_MAX_WAIT_MS": "10"}
    applicants = data.applicants(seed=5)
    bodies = [next(applicants) for _ in range(48)]
    with running_api(tmp_path / "plain", model_dir, workers=1, **runtime) as plain:
        expected = [post(plain.url, "/classify", body).json() for body in bodies]
    with running_api(tmp_path / "batched", model_dir, workers=2, **env) as api, ThreadPoolExecutor(16) as pool:
        answers = [response.json() for response in pool.map(lambda b: post(api.url, "/classify", b), bodies)]
        samples = parse(api.metrics())
        served_by = {served_runtime(api.url) for _ in range(10)}

    assert served_by == {model_runtime}
    assert answers == expected
    batches = total(samples, "lab_batch_size_count")
    grouped = total(samples, "lab_batch_size_sum")
    assert grouped >= 48  # every request went through the batcher (plus warm-ups)
    assert grouped / batches > 1, "no two requests ever shared a model call"


def test_artifacts_from_another_scikit_learn_stop_the_start_with_a_retrain_message(tmp_path, model_dir):
    stale = tmp_path / "stale"
    shutil.copytree(model_dir, stale)
    metadata = json.loads((stale / METADATA).read_text())
    (stale / METADATA).write_text(json.dumps({**metadata, "sklearn_version": "1.0.2"}))

    api = start_gunicorn(tmp_path, stale, workers=2)
    process, log = api.process, api.log
    code = process.wait(60)

    output = log.read_text()
    assert code != 0
    assert "trained with scikit-learn 1.0.2" in output
    assert "retrain with `python -m model_api.train`" in output
    assert "Booting worker" not in output  # refused in the master, before any worker forked


@pytest.mark.parametrize("value", [None, "", "  "])
def test_an_unset_multiprocess_folder_is_explained(tmp_path, model_dir, value):
    api = start_gunicorn(tmp_path, model_dir, workers=1, PROMETHEUS_MULTIPROC_DIR=value)
    process, log = api.process, api.log

    assert process.wait(60) != 0
    assert "set PROMETHEUS_MULTIPROC_DIR to an empty folder" in log.read_text()


def test_only_prometheus_files_are_cleared_from_the_multiprocess_folder(tmp_path, model_dir):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")
    (folder / "notes.txt").write_text("not ours")

    with running_api(tmp_path, model_dir, workers=1, PROMETHEUS_MULTIPROC_DIR=str(folder)):
        assert not (folder / "counter_999999.db").exists()
        assert (folder / "notes.txt").exists()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_every_native_thread_pool_of_a_worker_has_the_configured_size(tmp_path, model_dir, threads):
    with running_api(tmp_path, model_dir, workers=1, LAB_BLAS_THREADS=threads) as api:
        pools = httpx2.get(api.url + "/readyz", timeout=5).json()["native_threads"]  # seen from a pool thread

    assert {"openmp", "openblas"} <= set(pools), pools  # the libraries scikit-learn and numpy load
    assert set(pools.values()) == {int(threads)}


def test_the_gunicorn_master_never_loads_numpy(api):
    master = psutil.Process(api.process.pid)

    assert not [m.path for m in master.memory_maps() if "numpy" in m.path or "openblas" in m.path.lower()]
