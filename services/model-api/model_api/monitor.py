"""A background task per worker that watches the event loop and the threadpool.

Event-loop lag: the probe asks to wake after `interval` and records how late it woke. A loop that is free
wakes it within a millisecond; a loop blocked by a sync call inside an `async def` wakes it late.
Threadpool: anyio's default limiter says how many threads are busy and how many tasks wait for one.
"""

from __future__ import annotations

import asyncio

import anyio.to_thread

from model_api.metrics import ApiMetrics

PROBE_INTERVAL = 0.25  # seconds between probes
WINDOW = 4  # probes per published per-worker maximum (one second)


async def watch(metrics: ApiMetrics, interval: float = PROBE_INTERVAL, window: int = WINDOW) -> None:
    """Run until cancelled, publishing lag and threadpool occupancy."""
    loop = asyncio.get_running_loop()
    limiter = anyio.to_thread.current_default_thread_limiter()
    worst = 0.0
    probes = 0
    while True:
        expected = loop.time() + interval
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - expected)
        metrics.loop_lag.observe(lag)
        worst = max(worst, lag)
        probes += 1
        if probes == window:
            metrics.worker_loop_lag.set(worst)
            worst, probes = 0.0, 0
        stats = limiter.statistics()
        metrics.threads_busy.set(stats.borrowed_tokens)
        metrics.threads_capacity.set(stats.total_tokens)
        metrics.threads_waiting.set(stats.tasks_waiting)
