"""Nothing lost: under load, a killed worker loses only the requests it was answering, a graceful stop answers
every request it accepted, and a worker says it is ready only once its models are warm.

Real gunicorn with 2 workers on 127.0.0.1, sync handlers waiting on a downstream call (so that requests are in
flight when the signal lands), and client threads that count every request they send, whatever becomes of it:
an answer, a refused connection, or a connection reset before the answer (sent, and then lost).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2
import pytest

from lab.api import running_api, start_gunicorn, wait_ready
from lab.polling import wait_for
from lab.processes import stop
from model_api import data

CLIENTS = 8
LATENCY_MS = "150"  # each request holds its worker's thread this long: a kill or stop always finds some in flight


@dataclass
class Sent:
    client: int
    connection: int  # which of the client's connections (a new one after each error)
    worker: str | None  # the pid that answered on this connection so far (None: no answer on it yet)
    outcome: str  # the status code, "refused" (never accepted) or "reset" (accepted, then no answer)


@dataclass
class Load:
    """Client threads, each on its own keep-alive connection (so each connection belongs to one worker), sending
    /classify until stopped and recording every request they sent."""

    url: str
    sent: list[Sent] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for i in range(CLIENTS):
            self.threads.append(threading.Thread(target=self._client, args=(i,), daemon=True))
            self.threads[-1].start()
        return self

    def _client(self, number: int) -> None:
        connection, worker = 0, None
        client = httpx2.Client(timeout=30)
        while not self.stopping.is_set():
            try:
                response = client.post(f"{self.url}/classify", json=data.COURSE_APPLICANT)
            except httpx2.ConnectError:
                outcome = "refused"
            except httpx2.TransportError:  # the connection closed or reset with the request sent
                outcome = "reset"
            else:
                outcome = str(response.status_code)
            with self.lock:
                self.sent.append(Sent(number, connection, worker, outcome))
            if outcome in ("refused", "reset"):
                client.close()
                client = httpx2.Client(timeout=30)
                connection, worker = connection + 1, None
                if outcome == "refused":
                    time.sleep(0.05)  # nothing listens: do not spin
            else:
                worker = response.headers["x-worker-pid"] if worker is None else worker
        client.close()

    def answered_by(self) -> Counter[str]:
        """Open connections per worker: the worker that answered each client's current connection."""
        with self.lock:
            latest = {s.client: s for s in self.sent}
        return Counter(s.worker for s in latest.values() if s.worker)

    def count(self) -> Counter[str]:
        with self.lock:
            return Counter(s.outcome for s in self.sent)

    def finish(self) -> list[Sent]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        return self.sent


@pytest.mark.timeout(180)
def test_a_killed_worker_loses_only_the_requests_it_was_answering(tmp_path, model_dir):
    env = {"LAB_HANDLER_STYLE": "sync", "LAB_DOWNSTREAM_LATENCY_MS": LATENCY_MS}
    with running_api(tmp_path, model_dir, workers=2, **env) as api:
        load = Load(api.url).start()
        try:
            wait_for(lambda: len(load.answered_by()) == 2 and load.count()["200"] >= 50, 60, "load on both workers")
            victim, connections = load.answered_by().most_common(1)[0]
            ready_before = api.output().count("Application startup complete")
            killed_at = len(load.sent)
            os.kill(int(victim), signal.SIGKILL)
            wait_for(lambda: api.output().count("Application startup complete") > ready_before, 60, "a new worker")
            served = load.count()["200"]
            wait_for(lambda: load.count()["200"] > served + 50, 30, "50 more answers after the respawn")
        finally:
            sent = load.finish()

    lost = [s for s in sent if s.outcome in ("reset", "refused")]
    lost_by_survivors = [s for s in lost if s.worker != victim]
    print(
        f"\nkilled worker {victim} with {connections} of {CLIENTS} connections; sent {len(sent)} "
        f"({killed_at} before the kill): {dict(Counter(s.outcome for s in sent))}; "
        f"lost on the killed worker's connections: {len(lost) - len(lost_by_survivors)}, "
        f"on the surviving workers': {len(lost_by_survivors)}"
    )
    assert {s.outcome for s in sent} <= {"200", "reset"}, "only a reset (never a refusal or an error answer)"
    assert lost_by_survivors == [], "requests the surviving worker accepted were lost"
    # The killed worker loses what it was answering: one request per connection it held, at most.
    assert len(lost) <= connections
    assert len({(s.client, s.connection) for s in lost}) == len(lost)


@pytest.mark.timeout(180)
def test_a_graceful_stop_under_load_answers_every_request_its_workers_had_received(tmp_path, model_dir):
    """SIGTERM while every client has a request in flight on its connection to a worker: each of those requests
    is answered before gunicorn exits, and it exits cleanly. (The clients send nothing after the signal: a
    connection still in the kernel's accept queue when gunicorn closes its socket is reset, which
    docs/api.md says.)"""
    env = {"LAB_HANDLER_STYLE": "sync", "LAB_DOWNSTREAM_LATENCY_MS": LATENCY_MS}
    api = start_gunicorn(tmp_path, model_dir, workers=2, **env)
    load = Load(api.url)
    try:
        wait_ready(api, workers=2)
        load.start()
        wait_for(lambda: len(load.answered_by()) == 2 and load.count()["200"] >= 50, 60, "load on both workers")
        load.stopping.set()  # the requests now in flight are the last ones
        api.process.send_signal(signal.SIGTERM)
        code = api.process.wait(60)
    finally:
        sent = load.finish()
        stop(api.process)

    outcomes = Counter(s.outcome for s in sent)
    print(f"\nSIGTERM under load: sent {len(sent)}: {dict(outcomes)}")
    assert code == 0
    assert set(outcomes) == {"200"}, outcomes


@pytest.mark.timeout(120)
def test_a_worker_answers_ready_only_once_its_models_are_warm(tmp_path, model_dir):
    """From the moment gunicorn starts, /readyz is polled: no answer says ready before the worker's startup (which
    loads and warms the models) logged that it completed, and the first ready answer carries the warm-up's
    timings."""
    api = start_gunicorn(tmp_path, model_dir, workers=1)
    answers: list[tuple[int, bool]] = []  # (status, whether the worker had logged ready by the answer)

    def ready() -> bool:
        api.alive()
        try:
            response = httpx2.get(f"{api.url}/readyz", timeout=30)
        except httpx2.TransportError:
            return False  # not listening yet
        answers.append((response.status_code, "Application startup complete" in api.output()))
        return response.status_code == 200 and response.json()

    try:
        body = wait_for(ready, 60, "/readyz to say ready", interval=0.01)
    finally:
        stop(api.process)

    assert all(logged for status, logged in answers if status == 200)
    assert {status for status, _ in answers} <= {200, 503}
    assert set(body["model_ms"]) == {"/classify", "/predict"}
    assert all(ms > 0 for ms in body["model_ms"].values())
