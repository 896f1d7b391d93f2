"""Cold start: what the readiness gate prevents when a new worker starts under load, and what a start costs.

Real gunicorn with 2 workers on 127.0.0.1 under load, then one more worker asked for (SIGTTIN: a scale-up, the
same cold start as a restart or a new replica) while its models take 3 s to fetch. Each request opens a new
connection, so the new worker gets its share as soon as it accepts. With the readiness gate it accepts only once
ready, and nothing fails; without it, it accepts at once and answers 503 until its models are loaded.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import httpx2
import pytest

from lab.api import RunningApi, start_gunicorn
from lab.exposition import parse
from lab.load import RecordedLoad
from lab.polling import wait_for
from lab.processes import stop
from model_api import data

pytestmark = pytest.mark.timeout(180)

CLIENTS = 6
FETCH_MS = 3000
READY_LOG = "worker ready"  # what runtime.Runtime.start logs when a worker is loaded and warm


def workers_ready(api: RunningApi) -> int:
    api.alive()
    return api.output().count(READY_LOG)


@pytest.mark.parametrize("gate", ["true", "false"])
def test_a_worker_started_under_load_fails_requests_only_without_the_readiness_gate(tmp_path, model_dir, gate):
    api = start_gunicorn(
        tmp_path, model_dir, workers=2, LAB_READINESS_GATE=gate, LAB_MODEL_FETCH_MS=str(FETCH_MS), LAB_WARM_UP="false"
    )
    load = RecordedLoad(api.url, CLIENTS, fresh_connections=True)
    try:
        wait_for(lambda: workers_ready(api) == 2, 60, "2 workers loaded")
        load.start()
        wait_for(lambda: load.count()["200"] >= 50, 60, "50 answers from the first two workers")
        before = len(load.outcomes)
        os.kill(api.process.pid, signal.SIGTTIN)  # one more worker, started cold under the load
        wait_for(lambda: workers_ready(api) == 3, 60, "the third worker loaded")
        ready_at = len(load.outcomes)
        wait_for(lambda: len(load.outcomes) >= ready_at + 100, 60, "100 answers after it was ready")
        readyz = [httpx2.get(f"{api.url}/readyz", timeout=10).json() for _ in range(12)]
        scraped = parse(httpx2.get(f"{api.url}/metrics", timeout=10).text)
    finally:
        outcomes = load.finish()
        stop(api.process)

    during = Counter(outcomes[before:ready_at])
    print(f"\ngate {gate}: {dict(Counter(outcomes[:before]))} before the new worker, {dict(during)} while it started")
    assert set(outcomes[:before]) == {"200"}
    assert set(outcomes[ready_at + 50 :]) == {"200"}, "failures went on after every worker was ready"
    if gate == "true":
        assert set(during) == {"200"}, "a gated worker took a request before it was ready"
    else:
        assert during["503"] > 0, "the ungated worker answered nothing while its models loaded"
        assert set(during) <= {"200", "503"}
    # Every worker reports its start: the fetch took what was asked, and no warm-up phase ran.
    phases = {
        dict(labels)["phase"]: value for (name, labels), value in scraped.items() if name == "lab_cold_start_seconds"
    }
    assert set(phases) == {"fetch", "load", "ready"}
    assert FETCH_MS / 1000 <= phases["fetch"] < FETCH_MS / 1000 + 2
    assert phases["ready"] >= phases["fetch"] + phases["load"]
    assert scraped[("lab_first_request_seconds", (("route", "/classify"),))] > 0
    assert {body["status"] for body in readyz} == {"ready"}, readyz
    assert all(body["cold_start"]["fetch"] >= FETCH_MS / 1000 for body in readyz), readyz
    assert all("model_ms" not in body or not body["model_ms"] for body in readyz)


def test_readyz_says_ready_at_once_without_the_gate_and_the_model_routes_say_why_they_cannot_answer(
    tmp_path, model_dir
):
    """Without the gate, a worker whose models are still loading answers /readyz 200 ("loading") and /classify 503
    with Retry-After and a message naming the knob, in the API's error format; once loaded, both change."""
    api = start_gunicorn(tmp_path, model_dir, workers=1, LAB_READINESS_GATE="false", LAB_MODEL_FETCH_MS="4000")
    try:
        wait_for(lambda: api.alive() and "Application startup complete" in api.output(), 60, "the worker to answer")
        started = time.monotonic()
        readyz = httpx2.get(f"{api.url}/readyz", timeout=10)
        early = httpx2.post(f"{api.url}/classify", json=data.COURSE_APPLICANT, timeout=10)
        assert time.monotonic() - started < 4, "the answers came only after the fetch: the test proves nothing"
        wait_for(lambda: workers_ready(api) == 1, 60, "the models loaded")
        late = httpx2.post(f"{api.url}/classify", json=data.COURSE_APPLICANT, timeout=10)
        ready = httpx2.get(f"{api.url}/readyz", timeout=10).json()
    finally:
        stop(api.process)

    assert readyz.status_code == 200
    assert readyz.json()["status"] == "loading"
    assert early.status_code == 503
    assert early.headers["retry-after"] == "1"
    assert "LAB_READINESS_GATE" in early.json()["message"]
    assert late.status_code == 200
    assert ready["status"] == "ready"
    assert set(ready["model_ms"]) == {"/classify", "/predict"}
