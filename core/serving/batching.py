"""Dynamic batching: concurrent requests for one model grouped into one predict call."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchingConfig:
    """How one model's requests are grouped: off, or up to max_batch_size rows / max_delay_ms of waiting."""

    enabled: bool = True
    max_batch_size: int = 64
    max_delay_ms: float = 0.0
    inline_max_ms: float = 2.0


@dataclass
class BatchItem:
    """One request's share of a batch: its rows (column-wise) and how many there are."""

    columns: dict[str, list[Any]]
    n: int
    entity_rows: list[dict[str, Any]] | None = None
    future: asyncio.Future | None = None
    deadline: float | None = None  # the request's latency budget ends then (time.perf_counter())


RunBatch = Callable[[Sequence[BatchItem]], list[Any]]


class DynamicBatcher:
    """Groups submitted items into batches run by ``run_batch``; one result per item, in order.

    ``run_batch(items)`` returns one result per item (or an exception instance for an item that
    failed). While one batch runs, new requests queue up and form the next batch, so batching costs
    no latency at low load; ``max_delay_ms`` additionally waits for a batch to fill.

    A model whose full batch is expected (from the warm-up timings in ``cost_ms``) to take under
    ``inline_max_ms`` runs on the event loop itself: for it a hop to another thread and back costs
    more than the model, and the GIL keeps the thread from running beside the loop anyway. A costlier
    model (a torch forward pass, which releases the GIL) runs on a batch thread of its own that takes
    the next batch the moment one ends, without waiting for the busy event loop to hand it over, so
    the model and the request handling overlap.
    """

    def __init__(self, run_batch: RunBatch, config: BatchingConfig,
                 on_batch: Callable[[int], None] | None = None, threads: int = 1):
        self.run_batch = run_batch
        self.config = config
        self.on_batch = on_batch
        self.cost_ms: Callable[[int], float] = lambda rows: float("inf")
        # the event-loop side, for cheap models
        self._queue: collections.deque[BatchItem] = collections.deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        # the batch-thread side, for costly models
        self._tqueue: collections.deque[BatchItem] = collections.deque()
        self._trows = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # batching off: requests run side by side on a pool
        self._executor = None if config.enabled else ThreadPoolExecutor(max_workers=max(threads, 1),
                                                                        thread_name_prefix="forgeml-predict")

    async def submit(self, item: BatchItem) -> Any:
        """Queue an item and return its result once its batch has run."""
        loop = asyncio.get_running_loop()
        if not self.config.enabled:
            if self.cost_ms(item.n) < self.config.inline_max_ms:
                result = self._run_safely([item])[0]
            else:
                result = (await loop.run_in_executor(self._executor, self._run_safely, [item]))[0]
            if isinstance(result, BaseException):
                raise result
            return result
        item.future = loop.create_future()
        if self.cost_ms(self.config.max_batch_size) < self.config.inline_max_ms:
            self._submit_inline(loop, item)
        else:
            self._submit_threaded(loop, item)
        result = await item.future
        if isinstance(result, BaseException):
            raise result
        return result

    def _run_safely(self, items: Sequence[BatchItem]) -> list[Any]:
        """Run a batch; when it fails as a whole, run each item alone so one bad request fails alone."""
        if self.on_batch is not None:
            self.on_batch(sum(i.n for i in items))
        try:
            return self._checked(items)
        except Exception as e:
            if len(items) == 1:
                return [e]
        out: list[Any] = []
        for item in items:
            try:
                out.extend(self._checked([item]))
            except Exception as e:
                out.append(e)
        return out

    def _checked(self, items: Sequence[BatchItem]) -> list[Any]:
        """Run a batch and insist on one result per item, so no request is handed another's result."""
        results = self.run_batch(items)
        if len(results) != len(items):
            raise RuntimeError(f"a batch of {len(items)} requests gave {len(results)} results")
        return results

    @staticmethod
    def _deliver(batch: Sequence[BatchItem], results: Sequence[Any]) -> None:
        for item, result in zip(batch, results, strict=True):
            if item.future is not None and not item.future.done():
                item.future.set_result(result)

    @staticmethod
    def _take(queue: collections.deque[BatchItem], limit: int) -> tuple[list[BatchItem], int]:
        batch: list[BatchItem] = []
        rows = 0
        while queue and (not batch or rows + queue[0].n <= limit):
            item = queue.popleft()
            batch.append(item)
            rows += item.n
        return batch, rows

    # ------------------------------------------------------------ on the event loop (cheap models)
    def _submit_inline(self, loop: asyncio.AbstractEventLoop, item: BatchItem) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._full = asyncio.Event()
            self._task = loop.create_task(self._worker())
        assert self._wake is not None and self._full is not None
        self._queue.append(item)
        self._queued_rows += item.n
        self._wake.set()
        if self._queued_rows >= self.config.max_batch_size:
            self._full.set()

    async def _worker(self) -> None:
        assert self._wake is not None and self._full is not None
        delay = self.config.max_delay_ms / 1000.0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if delay > 0 and self._queued_rows < self.config.max_batch_size:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), delay)
                except TimeoutError:
                    pass
            batch, rows = self._take(self._queue, self.config.max_batch_size)
            self._queued_rows -= rows
            if batch:
                self._deliver(batch, self._run_safely(batch))
                await asyncio.sleep(0)  # let the requests that arrived meanwhile be read before the next batch

    # ------------------------------------------------------------ on the batch thread (costly models)
    def _submit_threaded(self, loop: asyncio.AbstractEventLoop, item: BatchItem) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the model is shutting down")
            self._loop = loop
            self._tqueue.append(item)
            self._trows += item.n
            if self._thread is None:
                self._thread = threading.Thread(target=self._thread_main, name="forgeml-batch", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _thread_main(self) -> None:
        delay = self.config.max_delay_ms / 1000.0
        limit = self.config.max_batch_size
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._tqueue or self._closed)
                if self._closed:
                    return
                if delay > 0 and self._trows < limit:
                    self._cv.wait_for(lambda: self._trows >= limit or self._closed, delay)
                batch, rows = self._take(self._tqueue, limit)
                self._trows -= rows
                loop = self._loop
            results = self._run_safely(batch)
            if loop is None or loop.is_closed():
                return
            try:
                loop.call_soon_threadsafe(self._deliver, batch, results)
            except RuntimeError:  # the loop closed while the batch ran: nobody is waiting any more
                return

    async def close(self) -> None:
        """Stop the workers, fail what still waits, and release the threads."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._cv:
            self._closed = True
            waiting = list(self._tqueue) + list(self._queue)
            self._tqueue.clear()
            self._queue.clear()
            self._cv.notify_all()
        for item in waiting:
            if item.future is not None and not item.future.done():
                item.future.set_exception(RuntimeError("the model is shutting down"))
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10.0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
