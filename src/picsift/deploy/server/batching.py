"""Dynamic micro-batching: concurrent requests share one model call.

Requests decode in threads, then `submit` their (S, S, 3) array. One asyncio task takes what is
queued and runs it as a single batch in a dedicated inference thread. It waits for more requests (up
to `max_wait_ms` after the first one queued) only while other requests are still decoding, so a lone
request is never delayed, and under load the queue fills while the previous batch runs.
Items carry the predictor they were decoded for: after a hot-swap, requests decoded for the old
model finish on it and new ones use the new model; none is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("picsift.serve")


@dataclass
class _Item:
    predictor: Any
    array: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Groups concurrently submitted (S, S, 3) uint8 images into model calls of at most `max_batch_size`,
    waiting up to `max_wait_ms` only while other requests are still decoding."""

    def __init__(
        self, max_batch_size: int, max_wait_ms: float, on_batch: Callable[[int, float], None] | None = None
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._items: collections.deque[_Item] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._arriving = 0  # requests being read/decoded that will submit soon

    @property
    def running(self) -> bool:
        """True while the batching task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the batching task and its inference thread on the running event loop."""
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="picsift-infer")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="picsift-batcher")

    async def stop(self) -> None:
        """Stop the batching task, fail queued requests with RuntimeError and shut the inference thread down."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for item in self._items:
            if not item.future.done():
                item.future.set_exception(RuntimeError("server shutting down"))
        self._items.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @contextmanager
    def arriving(self):
        """Mark a request as on its way (reading/decoding), so a forming batch waits for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, predictor: Any, array: np.ndarray) -> np.ndarray:
        """One uint8 (S, S, 3) image -> its probability row (K,)."""
        if self._wake is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._items.append(_Item(predictor, array, future))
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        assert self._wake is not None  # set by start()
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._items[0].queued_at + self.max_wait
            while len(self._items) < self.max_batch_size and self._arriving > 0:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except (TimeoutError, asyncio.TimeoutError):
                    break
            n = min(self.max_batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.predictor), []).append(item)
        for items in groups.values():
            t0 = time.perf_counter()
            try:
                x = np.stack([it.array for it in items])
                probs = await loop.run_in_executor(self._executor, items[0].predictor.predict_arrays, x)
            except Exception as e:  # a failing model call fails its requests, never the server
                log.exception("inference failed for a batch of %d", len(items))
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(items), time.perf_counter() - t0)
            for it, row in zip(items, probs, strict=True):
                if not it.future.done():  # the client may have gone away
                    it.future.set_result(row)
