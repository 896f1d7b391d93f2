"""What a request does once its body is valid, in the handler style the lab is set to.

    [answer cache] -> working memory held -> downstream wait (a feature-store lookup) -> extra CPU work -> model
    inference (alone or in a batch) -> working memory given back (less what leaks) -> [answer cache]

The cache (when LAB_CACHE is on) is asked first, on the event loop: a hit skips everything after it, the
threadpool included; a miss stores the model's answer on its way out.

The three styles differ only in *where* that runs, which is the lesson:

- `sync`: in a threadpool thread, as FastAPI runs a plain `def` endpoint (`run_in_threadpool` on the
  default limiter). Waits block a thread, so concurrency per worker is capped by the pool size.
- `async`: on the event loop; the downstream wait is awaited, so thousands can wait at once. CPU work and
  inference still run on the loop.
- `async-blocking`: on the event loop with a *blocking* sleep: the classic mistake. Every wait stalls
  every other request in the worker.

We dispatch to the threadpool ourselves (rather than declaring `def` endpoints) only so that the wait for a
free thread can be timed as its own stage.
"""

from __future__ import annotations

import asyncio
import mmap
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import anyio.to_thread
import numpy as np

from model_api.batching import BatchTiming, MicroBatcher
from model_api.cache import AnswerCache, answer_key
from model_api.settings import Settings

# The stages in which a request waits for something it needs before it can go on, rather than being served:
# a free thread, a batch to fill, a CPU to run on. Their share of the time says whether requests queue.
CPU_WAIT = "cpu_wait"
WAIT_STAGES = ("threadpool_wait", "batch_queue", CPU_WAIT)


@dataclass
class Stages:
    """Seconds spent in each stage of one request, in the order they happened."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def since(self, stage: str, started: float) -> float:
        """Record the time from `started` (a perf_counter reading) to now; return now."""
        now = time.perf_counter()
        self.add(stage, now - started)
        return now

    def computed(self, stage: str, started: float, cpu_started: float) -> float:
        """Record computation since `started` (perf_counter) and `cpu_started` (this thread's thread_time) as two
        stages: `stage`, the CPU time the thread got, and `cpu_wait`, the rest of the wall time, when it was ready
        to run but waited for the CPU (the GIL held by another thread, a core busy elsewhere, the CPU quota
        spent). Return now."""
        now = time.perf_counter()
        wall, cpu = now - started, time.thread_time() - cpu_started
        self.add(stage, min(cpu, wall))
        self.add(CPU_WAIT, max(0.0, wall - cpu))
        return now


class WorkingMemory:
    """The memory one request holds while it is served (LAB_REQUEST_MEMORY_MB), like the feature matrix a real
    model builds: mapped from the kernel and filled, so it is resident at once, and unmapped when the request is
    answered, so it is given back at once (from the C heap, freed memory may stay with the process and look like
    a leak)."""

    def __init__(self, size: int) -> None:
        self._map = mmap.mmap(-1, size) if size > 0 else None
        if self._map is not None:
            np.frombuffer(self._map, dtype=np.uint8).fill(1)  # touch every page: the kernel charges them now

    def release(self) -> None:
        if self._map is not None:
            self._map.close()


# What requests left behind in this worker (LAB_LEAK_KB_PER_REQUEST): never freed, as a leak is not.
_LEAKED: list[bytearray] = []


def burn_cpu(milliseconds: float) -> None:
    """Do real computation for about `milliseconds` of this thread's CPU time.

    Pure-Python arithmetic holds the GIL, like the feature engineering it stands for; measuring thread
    CPU time (not wall time) means the work costs the same however busy the machine is.
    """
    if milliseconds <= 0:
        return
    deadline = time.thread_time() + milliseconds / 1000.0
    accumulator = 0
    while time.thread_time() < deadline:
        for i in range(1000):
            accumulator = (accumulator * 31 + i) % 1_000_003


@dataclass
class Inference:
    """How one route predicts: alone (`predict_one`), or through a micro-batcher when one is given."""

    predict_one: Callable[[dict[str, Any]], Any]
    batcher: MicroBatcher[dict[str, Any], Any] | None = None


class Workload:
    """Runs the configured request path for any route; records each stage's time in `Stages`."""

    def __init__(self, settings: Settings, rng: random.Random | None = None, cache: AnswerCache | None = None) -> None:
        self._style = settings.handler_style
        self._latency = settings.downstream_latency_ms / 1000.0
        self._jitter = settings.downstream_jitter_ms / 1000.0
        self._cpu_ms = settings.extra_cpu_ms
        self._memory_bytes = int(settings.request_memory_mb * 2**20)
        self._leak_bytes = int(settings.leak_kb_per_request * 1024)
        self._rng = rng or random.Random()
        self.cache = cache
        # ONNX Runtime's answers differ from scikit-learn's in the last digits: a shared Redis keeps them apart.
        self._cache_namespace = settings.model_runtime

    def stages(self, batched: bool) -> list[str]:
        """The stages a request goes through in this configuration, in order (only these are recorded)."""
        names = ["validation"]
        names += ["cache"] if self.cache is not None else []
        names += ["threadpool_wait"] if self._style == "sync" else []
        names += ["allocation"] if self._memory_bytes or self._leak_bytes else []
        names += ["downstream"] if self._latency > 0 else []
        names += ["cpu_work"] if self._cpu_ms > 0 else []
        names += ["batch_queue"] if batched else []
        names += ["inference"]
        names += [CPU_WAIT] if self._cpu_ms > 0 or not batched else []  # a batch's model call is not split
        return [*names, "serialization"]

    def _downstream_seconds(self) -> float:
        if self._jitter == 0:
            return self._latency
        return max(0.0, self._rng.uniform(self._latency - self._jitter, self._latency + self._jitter))

    async def run(self, route: str, features: dict[str, Any], inference: Inference, stages: Stages) -> Any:
        """Answer one request: from the cache if it has the answer, else in the configured style (and cache it)."""
        if self.cache is None:
            return await self._compute(features, inference, stages)
        started = time.perf_counter()
        key = answer_key(route, features, self._cache_namespace)
        cached = await self.cache.get(key)
        started = stages.since("cache", started)
        if cached is not None:
            return cached
        # A plain float: what the model returns may be numpy's, whose repr Redis would keep as "np.float64(...)".
        result = float(await self._compute(features, inference, stages))
        started = time.perf_counter()
        await self.cache.set(key, result)
        stages.since("cache", started)
        return result

    async def _compute(self, features: dict[str, Any], inference: Inference, stages: Stages) -> Any:
        if self._style == "sync":
            submitted = time.perf_counter()
            return await anyio.to_thread.run_sync(self._in_thread, features, inference, stages, submitted)
        memory = self._allocate(stages)
        try:
            return await self._on_loop(features, inference, stages)
        finally:
            memory.release()

    async def _on_loop(self, features: dict[str, Any], inference: Inference, stages: Stages) -> Any:
        started = time.perf_counter()
        wait = self._downstream_seconds()
        if wait > 0 and self._style == "async":
            await asyncio.sleep(wait)
        elif wait > 0:  # async-blocking: deliberately wrong, to show what it does to the event loop
            time.sleep(wait)
        self._after_wait(stages, started)
        if inference.batcher is None:
            return self._predict_alone(features, inference, stages)
        timing = BatchTiming()
        result = await inference.batcher.submit(features, timing)
        self._record_batch(stages, timing)
        return result

    def _in_thread(self, features: dict[str, Any], inference: Inference, stages: Stages, submitted: float) -> Any:
        stages.since("threadpool_wait", submitted)
        memory = self._allocate(stages)
        try:
            return self._in_thread_holding(features, inference, stages)
        finally:
            memory.release()

    def _in_thread_holding(self, features: dict[str, Any], inference: Inference, stages: Stages) -> Any:
        started = time.perf_counter()
        wait = self._downstream_seconds()
        if wait > 0:
            time.sleep(wait)
        self._after_wait(stages, started)
        if inference.batcher is None:
            return self._predict_alone(features, inference, stages)
        timing = BatchTiming()
        result = anyio.from_thread.run(inference.batcher.submit, features, timing)
        self._record_batch(stages, timing)
        return result

    def _allocate(self, stages: Stages) -> WorkingMemory:
        """Take the request's working memory and leave its leak behind (each when configured)."""
        if not (self._memory_bytes or self._leak_bytes):
            return WorkingMemory(0)
        started = time.perf_counter()
        memory = WorkingMemory(self._memory_bytes)
        if self._leak_bytes:
            _LEAKED.append(bytearray(b"\x01") * self._leak_bytes)  # filled, so resident
        stages.since("allocation", started)
        return memory

    def _after_wait(self, stages: Stages, started: float) -> None:
        """Close the downstream stage, then do the extra CPU work as a stage of its own (each when configured:
        recording a stage that cannot happen would only cost time on every request)."""
        if self._latency > 0:
            started = stages.since("downstream", started)
        if self._cpu_ms > 0:
            cpu_started = time.thread_time()
            burn_cpu(self._cpu_ms)
            stages.computed("cpu_work", started, cpu_started)

    @staticmethod
    def _predict_alone(features: dict[str, Any], inference: Inference, stages: Stages) -> Any:
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = inference.predict_one(features)
        stages.computed("inference", started, cpu_started)
        return result

    @staticmethod
    def _record_batch(stages: Stages, timing: BatchTiming) -> None:
        stages.add("batch_queue", timing.queued_seconds)
        stages.add("inference", timing.inference_seconds)
