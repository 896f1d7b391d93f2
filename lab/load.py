"""A small, bounded load from this machine: client threads posting the course's applicant to /classify as fast as
the API answers, for tests and for the flame graphs of the docs (the lab's own load is Locust's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
