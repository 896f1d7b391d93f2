"""Benchmark 3, what a scrape costs: sequential GET /metrics against four workers that have served traffic on
both model routes, timed while wrk keeps them busy (under gunicorn each scrape reads and merges every worker's
files, and under load it waits its turn on a worker's event loop as Prometheus' scrapes do)."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import httpx2

from benchmarks.harness import DEFAULT_KNOBS, Bench, progress
from benchmarks.wrk import WrkResult
from lab.polling import wait_for

SCRAPE_WORKERS = 4
TRAFFIC_CONNECTIONS = 16
TARGET_SCRAPE_MS = 50.0


@dataclass
class ScrapeResult:
    """Sequential GET /metrics against several workers that have served traffic."""

    workers: int
    count: int
    median_ms: float
    p99_ms: float
    max_ms: float
    over_target: int  # scrapes slower than the target
    body_bytes: int
    samples_ms: list[float]
    traffic: list[WrkResult]

    @property
    def met(self) -> bool:
        return self.p99_ms < TARGET_SCRAPE_MS


def percentile(samples: list[float], p: float) -> float:
    """The nearest-rank percentile (of 50 samples, P99 is the largest)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def time_scrapes(url: str, count: int) -> tuple[list[float], int]:
    """`count` sequential GET /metrics on one keep-alive connection; milliseconds each, and the body size."""
    samples = []
    size = 0
    with httpx2.Client(timeout=30) as client:
        client.get(url).raise_for_status()  # the connection, not the scrape, is what the first one would time
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            samples.append(elapsed)
            size = len(response.content)
    return samples, size


def run(bench: Bench) -> ScrapeResult:
    """GET /metrics timed after traffic on both model routes has spread over 4 workers (not pinned), while wrk
    loads /predict at 16 connections."""
    progress(f"scrape: starting {SCRAPE_WORKERS} workers")
    with bench.api(SCRAPE_WORKERS, {"LAB_METRICS": "true", **DEFAULT_KNOBS}) as api:
        traffic = [
            bench.measure(f"traffic {path}", api, path, TRAFFIC_CONNECTIONS, None, warmup=False)
            for path in ("/predict", "/classify")
        ]
        progress(f"scrape: {bench.options.scrapes} sequential GET /metrics while wrk loads /predict")
        load: list[WrkResult] = []
        seconds = max(bench.options.duration_s, 2 + bench.options.scrapes // 10)  # outlasts the scrapes
        loading = threading.Thread(
            target=lambda: load.append(
                bench.wrk.run("load during the scrapes", api.url, "/predict", TRAFFIC_CONNECTIONS, seconds, None)
            )
        )
        busy_from = api.cpu_seconds()
        loading.start()
        try:  # the first scrape waits for wrk's load to reach the workers: 0.5 s of their CPU spent on it
            wait_for(lambda: api.cpu_seconds() - busy_from > 0.5, 10, "wrk's load to reach the workers", interval=0.1)
            samples, size = time_scrapes(f"{api.url}/metrics", bench.options.scrapes)
        finally:
            loading.join()
        traffic += load
    result = ScrapeResult(
        workers=SCRAPE_WORKERS,
        count=len(samples),
        median_ms=statistics.median(samples),
        p99_ms=percentile(samples, 99),
        max_ms=max(samples),
        over_target=sum(s >= TARGET_SCRAPE_MS for s in samples),
        body_bytes=size,
        samples_ms=[round(s, 3) for s in samples],
        traffic=traffic,
    )
    progress(f"  /metrics: median {result.median_ms:.1f} ms, P99 {result.p99_ms:.1f} ms, {size:,} bytes")
    return result
