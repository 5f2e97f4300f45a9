"""Thread pools that stop with their command: `thread_pool` is a ThreadPoolExecutor that, when its block fails or
is interrupted (Ctrl+C), cancels the tasks not started yet instead of running every one of them first."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


@contextlib.contextmanager
def thread_pool(max_workers: int, thread_name_prefix: str = "") -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor of `max_workers` threads. A clean exit waits for its tasks (as `with
    ThreadPoolExecutor()` does); an exception (KeyboardInterrupt included) cancels the queued tasks, does not wait
    for the running ones, and propagates at once: `pool.map` queues every task up front, so a plain executor
    would decode or download the whole list before Ctrl+C took effect."""
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
