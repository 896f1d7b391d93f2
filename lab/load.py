"""A small, bounded load from this machine: client threads posting applicants to /classify as fast as the API
answers, for tests and for the flame graphs of the docs (the lab's own load is Locust's)."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx2

from model_api import data

CLIENTS = 6  # enough to keep two workers busy; bounded, and only ever against 127.0.0.1


@contextmanager
def closed_loop(url: str, clients: int = CLIENTS) -> Iterator[None]:
    """`clients` threads, each sending /classify and waiting for the answer, until the block ends."""
    stopping = threading.Event()

    def client() -> None:
        with httpx2.Client(timeout=30) as http:
            while not stopping.is_set():
                http.post(f"{url}/classify", json=data.COURSE_APPLICANT).raise_for_status()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stopping.set()
        for thread in threads:
            thread.join(60)


def course_applicant(_seed: int) -> Iterator[dict]:
    return itertools.repeat(data.COURSE_APPLICANT)


class RecordedLoad:
    """`clients` threads posting /classify until `finish()`, recording every request's outcome in order: its status
    code, or the name of the transport error that ended it (a connection refused, reset or closed: no answer).

    Each client keeps one connection alive (it belongs to one worker) unless `fresh_connections`, when each request
    opens its own and goes to whichever worker accepts it. `payloads(n)` gives client n its applicants."""

    def __init__(
        self,
        url: str,
        clients: int = CLIENTS,
        payloads: Callable[[int], Iterator[dict]] = course_applicant,
        fresh_connections: bool = False,
    ) -> None:
        self.outcomes: list[str] = []
        self._url, self._payloads, self._fresh = url, payloads, fresh_connections
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def start(self) -> RecordedLoad:
        for thread in self._threads:
            thread.start()
        return self

    def _client(self, number: int) -> None:
        applicants = self._payloads(number)
        client = httpx2.Client(timeout=30)
        while not self._stopping.is_set():
            if self._fresh:
                client.close()
                client = httpx2.Client(timeout=30)
            try:
                outcome = str(client.post(f"{self._url}/classify", json=next(applicants)).status_code)
            except httpx2.TransportError as error:
                outcome = type(error).__name__
            with self._lock:
                self.outcomes.append(outcome)
        client.close()

    def count(self) -> Counter[str]:
        with self._lock:
            return Counter(self.outcomes)

    def finish(self) -> list[str]:
        """Stop the clients; every outcome, in order."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)
        return self.outcomes
