"""Dynamic batching: concurrent requests for one model grouped into one predict call."""

from __future__ import annotations

import asyncio
import collections
import contextlib
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


RunBatch = Callable[[Sequence[BatchItem]], list[Any]]


class DynamicBatcher:
    """Groups submitted items into batches run by ``run_batch`` on a worker thread.

    ``run_batch(items)`` returns one result per item (or an exception instance for an item that
    failed). While one batch runs, new requests queue up and form the next batch, so batching costs
    no latency at low load; ``max_delay_ms`` additionally waits for a batch to fill.

    A batch expected (from the warm-up timings in ``cost_ms``) to take under ``inline_max_ms`` runs
    on the event loop itself: for such batches a hop to a worker thread and back costs more than
    the model, and the GIL keeps the thread from running beside the loop anyway. Longer batches
    (a torch forward pass, which releases the GIL) run on the thread while the loop reads requests.
    """

    def __init__(self, run_batch: RunBatch, config: BatchingConfig,
                 on_batch: Callable[[int], None] | None = None, threads: int = 1):
        self.run_batch = run_batch
        self.config = config
        self.on_batch = on_batch
        self._queue: collections.deque[BatchItem] = collections.deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.cost_ms: Callable[[int], float] = lambda rows: float("inf")
        # batching on: one thread runs one batch at a time; off: requests run side by side
        self._executor = ThreadPoolExecutor(max_workers=1 if config.enabled else max(threads, 1),
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
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._full = asyncio.Event()
            self._task = loop.create_task(self._worker())
        item.future = loop.create_future()
        self._queue.append(item)
        self._queued_rows += item.n
        self._wake.set()
        if self._queued_rows >= self.config.max_batch_size:
            self._full.set()
        result = await item.future
        if isinstance(result, BaseException):
            raise result
        return result

    def _run_safely(self, items: Sequence[BatchItem]) -> list[Any]:
        """Run a batch; when it fails as a whole, run each item alone so one bad request fails alone."""
        if self.on_batch is not None:
            self.on_batch(sum(i.n for i in items))
        try:
            return self.run_batch(items)
        except Exception as e:
            if len(items) == 1:
                return [e]
        out: list[Any] = []
        for item in items:
            try:
                out.extend(self.run_batch([item]))
            except Exception as e:
                out.append(e)
        return out

    def _take(self) -> list[BatchItem]:
        batch: list[BatchItem] = []
        rows = 0
        limit = self.config.max_batch_size
        while self._queue and (not batch or rows + self._queue[0].n <= limit):
            item = self._queue.popleft()
            batch.append(item)
            rows += item.n
        self._queued_rows -= rows
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
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
            batch = self._take()
            if not batch:
                continue
            try:
                if self.cost_ms(sum(i.n for i in batch)) < self.config.inline_max_ms:
                    results = self._run_safely(batch)
                else:
                    results = await loop.run_in_executor(self._executor, self._run_safely, batch)
            except BaseException as e:  # the loop is shutting down: fail the waiting requests
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(e if isinstance(e, Exception) else RuntimeError("shutting down"))
                raise
            for item, result in zip(batch, results):
                if item.future is not None and not item.future.done():
                    item.future.set_result(result)

    async def close(self) -> None:
        """Stop the worker and release its thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)
