"""Micro-batching: concurrent requests share one model call, off the event loop.

Requests put their images on a queue; one worker task takes whatever has
queued up (up to ``max_batch`` images), runs the predictor on all of it in a
single dedicated thread, and hands each request its own slice of the results.
Under no load a request is run alone at once (no added wait); under load the
batch grows by itself while the previous one is computed. The event loop only
moves lists around, so it keeps answering ``/healthz`` and new connections
while the model works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """More requests are waiting than ``max_pending`` allows."""


class MicroBatcher:
    """Run ``fn(list_of_inputs) -> list_of_outputs`` on batches gathered from concurrent callers.

    Args:
        fn: called in the worker thread with 1..``max_batch`` inputs (more when one
            request alone brings more); must return one output per input, in order.
        max_batch: images per call at most (requests are never split).
        max_pending: requests allowed to wait; one more raises :class:`Overloaded`.
    """

    def __init__(
        self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 64, max_pending: int = 1024
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be >= 1")
        self._fn = fn
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[Any], asyncio.Future[list[Any]]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # model calls made (for tests and logs)

    async def submit(self, inputs: list[Any]) -> list[Any]:
        """Queue ``inputs`` (one request's images) and wait for their outputs.

        Raises:
            Overloaded: ``max_pending`` requests are already waiting.
            Exception: whatever ``fn`` raised for the batch this request was in.
        """
        queue = self._ensure_worker()
        if queue.qsize() >= self.max_pending:
            raise Overloaded(f"{queue.qsize()} requests already waiting")
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        queue.put_nowait((inputs, fut))
        return await fut

    def _ensure_worker(self) -> asyncio.Queue[tuple[list[Any], asyncio.Future[list[Any]]]]:
        """The queue of the running loop, with its worker task (made on first use per loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop = loop
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="mnistcnn-infer")
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._work(self._queue), name="mnistcnn-batcher")
        return self._queue

    async def _work(
        self, queue: asyncio.Queue[tuple[list[Any], asyncio.Future[list[Any]]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor
        while True:
            jobs = [await queue.get()]
            size = len(jobs[0][0])
            while size < self.max_batch and not queue.empty():
                job = queue.get_nowait()
                jobs.append(job)
                size += len(job[0])
            jobs = [(x, f) for x, f in jobs if not f.done()]  # drop timed-out callers
            if not jobs:
                continue
            flat = [x for inputs, _ in jobs for x in inputs]
            try:
                outputs = await loop.run_in_executor(executor, self._fn, flat)
                if len(outputs) != len(flat):
                    raise RuntimeError(f"predictor returned {len(outputs)} results for {len(flat)}")
            except Exception as exc:  # handed to every caller of this batch
                log.exception("batch of %d images failed", len(flat))
                for _, fut in jobs:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for inputs, fut in jobs:
                if not fut.done():
                    fut.set_result(list(outputs[start : start + len(inputs)]))
                start += len(inputs)

    async def aclose(self) -> None:
        """Stop the worker task and the thread (a running model call is left to finish)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
        self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
