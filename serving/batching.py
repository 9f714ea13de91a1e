"""Merges concurrent requests into one model call.

A request waits in a bounded queue; the batcher takes the oldest, adds whatever else is queued
for the same model (up to `max_batch_size` rows, waiting at most `max_wait_us` for more), runs
one model call in a thread (TensorFlow releases the GIL) and hands each request its slice. While
a call runs the next batch fills, so batches grow with load. A full queue raises QueueFull at once
(RESOURCE_EXHAUSTED) instead of growing.

An idle batcher (no call in flight, nothing queued) hands a request straight to a model thread:
there is nothing to batch it with, and the queue and the batching task would add two turns of
the event loop (~0.1-0.2 ms of a ~1.3 ms batch-1 request). Requests arriving while that call
runs queue and batch as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from serving.config import BatchingConfig
from serving.predictor import PackedBatch, Predictor


class QueueFull(RuntimeError):
    """The batching queue is full: the caller should back off."""


@dataclass
class _Item:
    predictor: Predictor
    batch: PackedBatch
    future: asyncio.Future[np.ndarray]


class Batcher:
    """`await batcher.predict(predictor, batch)`; start with `start()`, end with `stop()`."""

    def __init__(
        self,
        config: BatchingConfig,
        executor: Executor,
        on_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self.config = config
        self._executor = executor
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(config.max_queued_requests)
        self._slots = asyncio.Semaphore(config.threads)
        self._pending: _Item | None = None  # taken from the queue, belongs to the next batch
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._direct = 0  # calls made by `predict` itself, the batcher being idle

    def start(self) -> None:
        if self.config.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finishes the model calls in flight; requests still queued are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
        if self._pending is not None:
            self._pending.future.cancel()
            self._pending = None
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    def _idle(self) -> bool:
        """No model call in flight and nothing waiting for one."""
        return (
            not self._direct and not self._calls and self._pending is None and self._queue.empty()
        )

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def predict(self, predictor: Predictor, batch: PackedBatch) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if not self.config.enabled:
            self._on_batch(len(batch))
            return await loop.run_in_executor(self._executor, predictor.predict, batch)
        if self._idle():  # nothing to batch it with: straight to a model thread
            self._on_batch(len(batch))
            self._direct += 1
            try:
                return await loop.run_in_executor(self._executor, predictor.predict, batch)
            finally:
                self._direct -= 1
        item = _Item(predictor, batch, loop.create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull(
                f"{self._queue.qsize()} requests are queued (the limit); retry later"
            ) from None
        return await item.future

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            items = await self._collect()
            if not items:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._call(items))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _next(self, timeout: float | None) -> _Item | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _collect(self) -> list[_Item]:
        """The oldest live request plus queued ones for the same model, up to max rows."""
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        assert first is not None
        if first.future.done():  # cancelled: the client gave up or its deadline passed
            return []
        items, rows = [first], len(first.batch)
        deadline = loop.time() + self.config.max_wait_us / 1e6
        while rows < self.config.max_batch_size:
            item = await self._next(deadline - loop.time())
            if item is None:
                break
            if item.future.done():
                continue
            if (
                item.predictor is not first.predictor
                or rows + len(item.batch) > self.config.max_batch_size
            ):
                self._pending = item  # starts the next batch
                break
            items.append(item)
            rows += len(item.batch)
        return items

    async def _call(self, items: list[_Item]) -> None:
        try:
            batch = PackedBatch.concat([i.batch for i in items])
            self._on_batch(len(batch))
            loop = asyncio.get_running_loop()
            try:
                scores = await loop.run_in_executor(
                    self._executor, items[0].predictor.predict, batch
                )
            except Exception as e:  # the model failed: every request in the batch learns why
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(e)
                return
            start = 0
            for item in items:
                end = start + len(item.batch)
                if not item.future.done():
                    item.future.set_result(scores[start:end])
                start = end
        finally:
            self._slots.release()
