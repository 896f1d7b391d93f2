"""What one worker process holds while it serves: settings, models, workload, metrics, and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import psutil
import sklearn
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from threadpoolctl import threadpool_info, threadpool_limits

from model_api import __version__, data
from model_api.batching import MicroBatcher
from model_api.cache import build_cache
from model_api.collectors import ContainerCollector, ServiceCollector, WorkerCollector, this_pid, this_process
from model_api.metrics import ApiMetrics
from model_api.models import Models, load_models
from model_api.monitor import watch
from model_api.schemas import CreditDecision
from model_api.settings import Settings
from model_api.workload import Inference, Stages, Workload

log = logging.getLogger("model_api")


def _warm_ms(predict: Callable[[], object], runs: int = 5) -> float:
    """Call `predict` once cold, then `runs` times: the median of the warm calls, in milliseconds."""
    predict()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _native_threads() -> dict[str, int]:
    """Threads of each BLAS/OpenMP pool as the calling thread would use them (OpenMP's count is per thread)."""
    return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


class Runtime:
    """Created by the app factory; `start()` runs after the fork, in the worker, before it serves."""

    def __init__(
        self,
        settings: Settings,
        worker_pids: Callable[[], list[int]] = this_process,
        api_root_pid: Callable[[], int] = this_pid,
    ) -> None:
        self.settings = settings
        self.ready = False  # loaded and warm: what /readyz reports
        self.loaded = False  # the model routes can answer (loaded, maybe not yet warm)
        self.failed = ""  # why a start without the readiness gate failed
        # Seconds each phase of this worker's start took (fetch, load, warm_up, ready: since the process started).
        self.cold_start: dict[str, float] = {}
        self._starting: asyncio.Task[None] | None = None
        self.native_threads: dict[str, int] = {}
        # Milliseconds one warm prediction took at start, per route: what this machine's core costs the model,
        # the figure a learner compares with the guide's (a knee scales with it).
        self.model_ms: dict[str, float] = {}
        self.models: Models | None = None
        self.credit = Inference(predict_one=self._not_loaded)
        self.house = Inference(predict_one=self._not_loaded)
        self._monitor: asyncio.Task[None] | None = None
        # Under gunicorn, values go to multiprocess files (registry None) and each scrape collects them;
        # in a single process they live in this app's own registry.
        self._registry = None if settings.multiprocess else CollectorRegistry()
        self.metrics = ApiMetrics(self._registry) if settings.metrics else None
        # The cache opens no connection here: redis-py connects on the first call, in the worker's event loop.
        self.workload = Workload(settings, cache=build_cache(settings, self.metrics))
        self._collectors = [
            WorkerCollector(worker_pids),
            ContainerCollector(api_root_pid=api_root_pid),
            ServiceCollector(self._build_labels(), settings.slo_ms / 1000.0),
        ]
        if self._registry is not None:
            for collector in self._collectors:
                self._registry.register(collector)

    @staticmethod
    def _not_loaded(_: dict[str, Any]) -> Any:
        raise RuntimeError("models are not loaded yet")

    def _build_labels(self) -> dict[str, str]:
        return {
            "version": __version__,
            "sklearn_version": sklearn.__version__,
            "model": "random-forest",
            "model_runtime": self.settings.model_runtime,
            "handler_style": self.settings.handler_style,
            "batching": str(self.settings.batching).lower(),
        }

    async def start(self) -> None:
        """Fetch and load the models in this worker, size the thread pools, start the batcher and the monitor,
        warm up. Each phase is timed: the cold start a learner sees on the dashboard (lab_cold_start_seconds)."""
        # One BLAS/OpenMP thread per worker by default, so that workers x threads stays within the CPU limit.
        # Under gunicorn the environment already says so (gunicorn.conf.py); this covers other servers, for
        # the thread that starts the app.
        threadpool_limits(limits=self.settings.blas_threads)
        anyio.to_thread.current_default_thread_limiter().total_tokens = self.settings.threadpool_size
        with self._phase("fetch"):
            # A large model comes from a model store at start; here, a wait of that length (asyncio's, so that
            # a worker without the readiness gate answers meanwhile). uvloop's timers count whole milliseconds
            # from the loop's cached clock and can wake a millisecond early: sleep until the fetch has truly lasted.
            fetched_at = time.perf_counter() + self.settings.model_fetch_ms / 1000.0
            while (remaining := fetched_at - time.perf_counter()) > 0:
                await asyncio.sleep(remaining)
        with self._phase("load"):
            self.models = await anyio.to_thread.run_sync(
                load_models, self.settings.model_dir, self.settings.model_runtime
            )
        models = self.models
        self.credit = Inference(predict_one=lambda applicant: models.default_probabilities([applicant])[0])
        self.house = Inference(predict_one=lambda house: models.house_prices([house])[0])
        if self.settings.batching:
            batcher: MicroBatcher[dict[str, Any], float] = MicroBatcher(
                models.default_probabilities,
                max_size=self.settings.batch_max_size,
                max_wait=self.settings.batch_max_wait_ms / 1000.0,
                on_batch=self.metrics.batch_size.observe if self.metrics else None,
            )
            await batcher.start()
            self.credit = Inference(predict_one=self.credit.predict_one, batcher=batcher)
        if self.metrics is not None:
            for route, inference in (("/classify", self.credit), ("/predict", self.house)):
                for stage in self.workload.stages(batched=inference.batcher is not None):
                    self.metrics.child(self.metrics.stage, route, stage)  # exposed at zero from the first scrape
            self._monitor = asyncio.create_task(watch(self.metrics), name="loop-and-threadpool-monitor")
        self.loaded = True
        if self.settings.warm_up:
            with self._phase("warm_up"):
                await self._warm_up()
        self.native_threads = await anyio.to_thread.run_sync(_native_threads)
        # Everything alive now (models, modules, app) lives as long as the worker. Without this, every full
        # garbage collection rescans those ~120,000 objects: a 70 ms pause on this machine, straight into P99.
        gc.collect()
        gc.freeze()
        self.ready = True
        self._record_phase("ready", time.time() - psutil.Process().create_time())
        log.info(
            "worker ready %.1fs after its start: %s handler, batching %s, %d threads, warm-up %s",
            self.cold_start["ready"],
            self.settings.handler_style,
            "on" if self.settings.batching else "off",
            self.settings.threadpool_size,
            "on" if self.settings.warm_up else "off",
        )

    def start_in_background(self) -> None:
        """Start without holding requests back (LAB_READINESS_GATE=false): the worker answers at once, and its
        model routes answer 503 until the models are loaded."""

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                self.failed = f"{type(task.exception()).__name__}: {task.exception()}"
                log.error("cannot start: %s", self.failed)

        self._starting = asyncio.create_task(self.start(), name="start-without-readiness-gate")
        self._starting.add_done_callback(done)

    @contextlib.contextmanager
    def _phase(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self._record_phase(phase, time.perf_counter() - started)

    def _record_phase(self, phase: str, seconds: float) -> None:
        self.cold_start[phase] = round(seconds, 3)
        if self.metrics is not None:
            self.metrics.child(self.metrics.cold_start, phase, self.settings.model_runtime).set(seconds)

    async def _warm_up(self) -> None:
        # The first prediction pays for lazy imports and cache fills; do it before /readyz says yes,
        # so that a load test never meets a cold worker. Straight to the models: no simulated wait.
        assert self.models is not None
        models = self.models
        self.model_ms = {
            "/classify": _warm_ms(lambda: models.default_probabilities([data.COURSE_APPLICANT])),
            "/predict": _warm_ms(lambda: models.house_prices([data.COURSE_HOUSE])),
        }
        if self.credit.batcher is not None:
            await self.credit.batcher.submit(dict(data.COURSE_APPLICANT))

    async def stop(self) -> None:
        """Answer what is queued in the batcher, then stop the background tasks."""
        self.ready = False
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self.credit.batcher is not None:
            await self.credit.batcher.stop()
        if self.workload.cache is not None:
            await self.workload.cache.close()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    def decide(self, probability: float) -> CreditDecision:
        """Turn a default probability into a decision with the configured thresholds."""
        return CreditDecision.of(probability, self.settings.approve_below, self.settings.decline_from)

    def observe_stages(self, route: str, stages: Stages) -> None:
        if self.metrics is None:
            return
        for stage, seconds in stages.seconds.items():
            self.metrics.child(self.metrics.stage, route, stage).observe(seconds)

    def scrape_registry(self) -> CollectorRegistry | None:
        """The registry to render for one scrape: every worker's files plus the scrape-time collectors."""
        if self.metrics is None:
            return None
        if self._registry is not None:
            return self._registry
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(self.settings.multiproc_dir))
        for collector in self._collectors:
            registry.register(collector)
        return registry
