"""The micro-batcher: concurrent callers share model calls, and each gets exactly its own answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from model_api.batching import BatchTiming, MicroBatcher

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the batcher is asyncio code, as uvicorn's event loop is


class RecordingModel:
    """Answers each item with a value derived from it, and remembers the batches it was called with."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError("model failed")
        return [item * 10 + 1 for item in items]


async def test_every_caller_gets_its_own_result_under_concurrency():
    model = RecordingModel()
    sizes: list[int] = []
    batcher = MicroBatcher(model, max_size=16, max_wait=0.01, on_batch=sizes.append)
    await batcher.start()

    results = await asyncio.gather(*(batcher.submit(i) for i in range(200)))
    await batcher.stop()

    assert results == [i * 10 + 1 for i in range(200)]
    assert sorted(item for batch in model.batches for item in batch) == list(range(200))
    assert max(sizes) > 1, "concurrent callers were never grouped"
    assert max(sizes) <= 16
    assert sizes == [len(batch) for batch in model.batches]


async def test_the_model_runs_on_the_inference_thread_not_the_event_loop():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_size=4, max_wait=0.0)
    await batcher.start()
    await batcher.submit(1)
    await batcher.stop()

    assert model.threads
    assert all(name.startswith("inference") for name in model.threads)


async def test_a_lone_request_is_answered_after_at_most_the_wait():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_size=64, max_wait=0.005)
    await batcher.start()
    timing = BatchTiming()

    assert await asyncio.wait_for(batcher.submit(7, timing), timeout=5) == 71
    await batcher.stop()
    assert timing.batch_size == 1
    assert timing.inference_seconds > 0


async def test_a_failing_model_call_fails_its_batch_and_the_batcher_keeps_serving():
    model = RecordingModel(fail_on=3)
    batcher = MicroBatcher(model, max_size=8, max_wait=0.0)
    await batcher.start()

    with pytest.raises(ValueError, match="model failed"):
        await batcher.submit(3)
    assert await batcher.submit(4) == 41
    await batcher.stop()


async def test_a_caller_that_goes_away_does_not_disturb_the_others():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_size=8, max_wait=0.02)
    await batcher.start()

    abandoned = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    abandoned.cancel()

    assert await kept == 21
    await batcher.stop()


async def test_stop_answers_everything_already_queued():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_size=2, max_wait=0.05)
    await batcher.start()
    pending = [asyncio.create_task(batcher.submit(i)) for i in range(9)]
    await asyncio.sleep(0)

    await batcher.stop()

    assert [task.result() for task in pending] == [i * 10 + 1 for i in range(9)]


async def test_submit_before_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="start"):
        await MicroBatcher(RecordingModel(), max_size=2, max_wait=0).submit(1)


def test_max_size_must_be_positive():
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(RecordingModel(), max_size=0, max_wait=0)
