"""Handler styles, stage timing and the metrics they leave, in one process (gunicorn comes in integration)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from lab.exposition import parse, total
from model_api import data, workload
from model_api.metrics import SupervisorMetrics, all_family_names
from model_api.vocabulary import MODEL_RUNTIMES
from model_api.workload import Stages, WorkingMemory, burn_cpu


def stage_counts(client, route="/classify") -> dict[str, float]:
    samples = parse(client.get("/metrics").text)
    return {
        dict(labels)["stage"]: value
        for (name, labels), value in samples.items()
        if name == "lab_request_stage_duration_seconds_count" and dict(labels)["route"] == route
    }


def test_burn_cpu_does_real_work_for_about_the_asked_cpu_time():
    started = time.thread_time()
    burn_cpu(30)
    used = time.thread_time() - started

    assert used >= 0.030


@pytest.mark.parametrize(
    ("style", "knobs", "stages"),
    [
        ("sync", {}, ["validation", "threadpool_wait", "inference", "cpu_wait", "serialization"]),
        ("async", {"downstream_latency_ms": 5}, ["validation", "downstream", "inference", "cpu_wait", "serialization"]),
        ("async-blocking", {"extra_cpu_ms": 2}, ["validation", "cpu_work", "inference", "cpu_wait", "serialization"]),
        (
            "sync",
            {"downstream_latency_ms": 5, "extra_cpu_ms": 2},
            ["validation", "threadpool_wait", "downstream", "cpu_work", "inference", "cpu_wait", "serialization"],
        ),
        (
            "sync",
            {"request_memory_mb": 1},
            ["validation", "threadpool_wait", "allocation", "inference", "cpu_wait", "serialization"],
        ),
        ("async", {"leak_kb_per_request": 4}, ["validation", "allocation", "inference", "cpu_wait", "serialization"]),
    ],
)
def test_each_configuration_times_exactly_its_own_stages_once_per_request(make_client, style, knobs, stages):
    client = make_client(handler_style=style, **knobs)
    assert stage_counts(client) == dict.fromkeys(stages, 0)  # every stage is exposed before the first request

    assert client.post("/classify", json=data.COURSE_APPLICANT).status_code == 200
    assert client.post("/predict", json=data.COURSE_HOUSE).status_code == 200

    assert stage_counts(client) == dict.fromkeys(stages, 1)
    assert stage_counts(client, "/predict") == dict.fromkeys(stages, 1)


def test_computation_is_split_into_the_cpu_time_it_got_and_the_time_it_waited_for_a_cpu():
    stages = Stages()
    started, cpu_started = time.perf_counter(), time.thread_time()
    burn_cpu(20)
    time.sleep(0.05)  # ready to go on but not running, as while another thread holds the GIL

    stages.computed("inference", started, cpu_started)

    assert 0.02 <= stages.seconds["inference"] < 0.05
    assert stages.seconds["cpu_wait"] >= 0.05


def test_working_memory_is_resident_while_held_and_unmapped_when_released():
    memory = WorkingMemory(8 * 2**20)
    assert memory._map is not None
    assert memory._map[-1] == 1  # filled to the last page

    memory.release()

    assert memory._map.closed


@pytest.mark.parametrize("style", ["sync", "async"])
def test_each_request_leaves_its_leak_behind_in_the_worker(make_client, style):
    client = make_client(handler_style=style, leak_kb_per_request=16)
    before = len(workload._LEAKED)

    for _ in range(3):
        assert client.post("/classify", json=data.COURSE_APPLICANT).status_code == 200

    assert len(workload._LEAKED) == before + 3
    assert {len(leaked) for leaked in workload._LEAKED[before:]} == {16 * 1024}


def test_the_cpu_work_stage_takes_the_configured_cpu_time(make_client):
    client = make_client(handler_style="async", extra_cpu_ms=25)
    client.post("/classify", json=data.COURSE_APPLICANT)

    samples = parse(client.get("/metrics").text)
    assert total(samples, "lab_request_stage_duration_seconds_sum", route="/classify", stage="cpu_work") >= 0.025


def test_the_downstream_stage_takes_the_configured_latency(make_client):
    client = make_client(handler_style="async", downstream_latency_ms=40)
    client.post("/classify", json=data.COURSE_APPLICANT)

    samples = parse(client.get("/metrics").text)
    spent = total(samples, "lab_request_stage_duration_seconds_sum", route="/classify", stage="downstream")
    assert spent >= 0.040


@pytest.mark.parametrize("model_runtime", MODEL_RUNTIMES)
@pytest.mark.parametrize("style", ["sync", "async", "async-blocking"])
def test_batching_answers_every_concurrent_caller_its_own_applicant(make_client, style, model_runtime):
    client = make_client(handler_style=style, batching=True, batch_max_wait_ms=20, model_runtime=model_runtime)
    applicants = data.applicants(seed=3)
    bodies = [next(applicants) for _ in range(24)]
    alone = make_client(handler_style="async", model_runtime=model_runtime)
    expected = [alone.post("/classify", json=body).json() for body in bodies]

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda body: client.post("/classify", json=body).json(), bodies))

    assert answers == expected
    samples = parse(client.get("/metrics").text)
    assert total(samples, "lab_batch_size_count") >= 1
    assert "batch_queue" in stage_counts(client)


def test_a_blocked_event_loop_shows_as_lag(make_client):
    client = make_client(handler_style="async-blocking", downstream_latency_ms=400)

    client.post("/classify", json=data.COURSE_APPLICANT)  # blocks the loop 0.4 s, longer than a probe interval

    samples = parse(client.get("/metrics").text)
    late = total(samples, "lab_event_loop_lag_seconds_count") - total(
        samples, "lab_event_loop_lag_seconds_bucket", le="0.05"
    )
    assert late >= 1, "no probe saw the loop blocked"


def test_requests_are_counted_by_route_template_method_and_status(client):
    client.post("/classify", json=data.COURSE_APPLICANT)
    client.post("/classify", json={"age": 3})
    client.get("/no/such/page")

    samples = parse(client.get("/metrics").text)
    assert total(samples, "lab_http_requests_total", route="/classify", status="200", method="POST") == 1
    assert total(samples, "lab_http_requests_total", route="/classify", status="422") == 1
    assert total(samples, "lab_http_requests_total", route="unmatched", status="404") == 1
    assert total(samples, "lab_http_request_duration_seconds_count", route="/classify") == 2


def test_metrics_expose_every_documented_family(make_client):
    client = make_client(cache="local")  # the cache's families exist only with a cache on
    client.post("/classify", json=data.COURSE_APPLICANT)

    names = {family for family, _ in parse(client.get("/metrics").text)}
    exposed = {name.removesuffix("_count").removesuffix("_bucket").removesuffix("_sum") for name in names}

    # All but the accept queue, which exists where the API listens on a socket (a test client has none; see
    # test_listen_queue.py), the gunicorn master's counters (the integration tier has both, under gunicorn), and
    # the OOM kills, which exist only under a memory limit (test_cgroup.py).
    missing = {n for n in all_family_names() if n not in exposed} - {"lab_container_oom_kills_total"}
    assert missing == {"lab_listen_queue_connections", *SupervisorMetrics(CollectorRegistry()).families()}


def test_metrics_can_be_switched_off_and_requests_still_succeed(make_client):
    client = make_client(metrics=False)

    assert client.post("/classify", json=data.COURSE_APPLICANT).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "LAB_METRICS=false" in response.json()["message"]


def test_build_info_says_what_runs(make_client):
    client = make_client(handler_style="async", batching=True, model_runtime="onnx")

    samples = parse(client.get("/metrics").text)
    [(labels, value)] = [(dict(lbl), v) for (name, lbl), v in samples.items() if name == "lab_build_info"]
    assert value == 1
    assert labels["handler_style"] == "async"
    assert labels["batching"] == "true"
    assert labels["model_runtime"] == "onnx"
