"""Micro-batching: concurrent requests share one model call, and each caller gets its own answer back.

A forest costs about the same for 1 row as for 64 (the per-tree overhead dominates), so grouping the
requests that arrive together multiplies throughput. One batch runs at a time on a dedicated inference
thread; while it runs, the event loop keeps accepting requests, which then form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class BatchTiming:
    """How long one caller's item waited in the queue, and how long its batch's model call took."""

    queued_seconds: float = 0.0
    inference_seconds: float = 0.0
    batch_size: int = 0


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]
    queued_at: float
    timing: BatchTiming = field(default_factory=BatchTiming)


class MicroBatcher(Generic[Item, Result]):
    """Collects items for up to `max_wait` seconds or `max_size` items, then predicts them in one call.

    `predict` takes a list of items and returns one result per item, in order. `on_batch(size)` is told
    the size of every batch run (for the batch-size histogram).
    """

    def __init__(
        self,
        predict: Callable[[list[Item]], Sequence[Result]],
        max_size: int,
        max_wait: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._predict = predict
        self._max_size = max_size
        self._max_wait = max_wait
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending[Item, Result]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish the batch in progress, answer everything already queued, then stop."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = None

    async def submit(self, item: Item, timing: BatchTiming | None = None) -> Result:
        """Queue one item and wait for its own result. Fill `timing` if given."""
        if self._queue is None or self._task is None:
            raise RuntimeError("the batcher is not running: call start() first")
        pending = _Pending(item, asyncio.get_running_loop().create_future(), time.perf_counter())
        if timing is not None:
            pending.timing = timing
        self._queue.put_nowait(pending)
        return await pending.future

    async def _collect(self) -> list[_Pending[Item, Result]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self._max_wait
        while len(batch) < self._max_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._predict, [p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"predict returned {len(results)} results for {len(batch)} items")
            except Exception as error:  # one failed model call fails its own batch, not the batcher
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
            else:
                elapsed = time.perf_counter() - started
                for pending, result in zip(batch, results, strict=True):
                    pending.timing.queued_seconds = started - pending.queued_at
                    pending.timing.inference_seconds = elapsed
                    pending.timing.batch_size = len(batch)
                    if not pending.future.done():  # the caller may have gone away (client disconnected)
                        pending.future.set_result(result)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._on_batch is not None:
                self._on_batch(len(batch))
