"""Buffered batch writing: callers append rows to memory, a daemon thread writes them in batches.

The metric writer (``log_metric``) and the access log use it; a batch the store refuses is split
down to the rows at fault, which are set aside, and transient failures keep every row for a retry.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ForgeError, StorageError, ValidationError

Row = tuple[Any, ...]

MAX_REJECTED = 1000  # refused points kept for inspection; the rest are only counted in the report
IDLE_EXIT_S = 5.0  # an idle writer's thread exits; the next point starts it again

_WRITERS: weakref.WeakSet[BufferedWriter] = weakref.WeakSet()


@dataclass
class _Outcome:
    """Where the rows of a refused batch went while it was written piece by piece."""

    error: Exception
    written: int = 0
    rejected: list[Row] = field(default_factory=list)
    retry: list[Row] = field(default_factory=list)


def _metric_label(row: Row) -> str:
    return f"{row[1]}@{row[2]}"  # a metric point: (run seq, key, step, timestamp, value)


class BufferedWriter:
    """Buffers rows and writes them in batches: on a timer, on flush(), and at exit.

    ``what`` names one row in messages and ``label`` shows one refused row.
    """

    def __init__(self, write_batch: Callable[[Sequence[Row]], None], interval_s: float = 0.5,
                 what: str = "metric point", label: Callable[[Row], str] = _metric_label):
        self.write_batch = write_batch
        self.what, self.label = what, label
        self.interval_s = max(0.01, min(float(interval_s), 1.0))
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        self._buf: list[Row] = []
        self._failed: list[Row] = []
        self.rejected: list[Row] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: ForgeError | None = None

    # ------------------------------------------------------------ the hot path
    def append(self, point: Row) -> None:
        """Buffer one point; the first call starts the background thread."""
        with self._lock:
            self._buf.append(point)
        if self._thread is None:
            self._start()

    def extend(self, points: Sequence[Row]) -> None:
        """Buffer several points at once."""
        with self._lock:
            self._buf.extend(points)
        if self._thread is None:
            self._start()

    def pending(self) -> int:
        """Return how many points are buffered and not yet written."""
        return len(self._buf) + len(self._failed)

    # ------------------------------------------------------------ writing
    def _start(self) -> None:
        _ensure_exit_flush()
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            thread = threading.Thread(target=self._loop, name="forgeml-buffered-writer", daemon=True)
            self._thread = thread
        thread.start()

    def _loop(self) -> None:
        stop = self._stop
        idle_ticks = 0
        while not stop.wait(self.interval_s):
            try:
                idle_ticks = 0 if self._write_pending() else idle_ticks + 1
            except ForgeError as e:
                # keep the points and retry on the next tick; flush() reports the error to the caller
                self.error = e
                idle_ticks = 0
            if idle_ticks * self.interval_s >= IDLE_EXIT_S:
                with self._lock:
                    # an append that lands after this sees no thread and starts a new one
                    if not self._buf and not self._failed:
                        self._thread = None
                        return

    def _write_pending(self) -> int:
        with self._write_lock:
            with self._lock:
                batch, self._buf = self._buf, []
            rows = self._failed + batch if self._failed else batch
            if not rows:
                return 0
            try:
                self.write_batch(rows)
            except Exception as e:
                if isinstance(e, StorageError) and e.transient:
                    # the store cannot write now (locked, full, read-only): keep every point for the retry
                    self._failed = rows
                    raise
                outcome = _Outcome(error=e)
                self._isolate(rows, e, outcome)
                # a row refused on its own, not for a transient reason, is the row's fault: set it aside
                self._failed = outcome.retry
                if outcome.rejected:
                    self._reject(outcome.rejected, outcome.error)
                if outcome.retry:
                    raise StorageError(f"writing {len(outcome.retry)} {self.what}(s) failed for now; they are kept "
                                       f"and retried: {outcome.error}", transient=True) from outcome.error
                return outcome.written
            self._failed = []
            self.error = None
            return len(rows)

    def _isolate(self, rows: list[Row], error: Exception, outcome: _Outcome) -> None:
        """Write a refused batch in halves down to single rows, sorting rows into written, refused and retry."""
        if isinstance(error, StorageError) and error.transient:
            outcome.retry.extend(rows)
            outcome.error = error
            return
        if len(rows) == 1:
            outcome.rejected.extend(rows)
            outcome.error = error
            return
        mid = len(rows) // 2
        for half in (rows[:mid], rows[mid:]):
            try:
                self.write_batch(half)
                outcome.written += len(half)
            except Exception as e:
                self._isolate(half, e, outcome)

    def _reject(self, rows: list[Row], error: Exception) -> None:
        """Set refused points aside (kept in ``rejected``) and report them once, so later points go on."""
        self.rejected.extend(rows[:MAX_REJECTED - len(self.rejected)])
        sample = ", ".join(self.label(row) for row in rows[:3])
        self.error = ValidationError(f"the store refused {len(rows)} {self.what}(s) ({sample}): "
                                     f"{type(error).__name__}: {error}; later points were written")
        print(f"forgeml: {self.error}", file=sys.stderr)

    def flush(self) -> int:
        """Write every buffered point now and return how many were written."""
        return self._write_pending()

    def stop(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent writes its own buffered points; the child starts empty with fresh locks and no thread.
        self._reset()


def flush_all() -> None:
    """Flush every writer of this process; errors are reported, not raised (used at exit)."""
    for writer in list(_WRITERS):
        try:
            writer.flush()
        except ForgeError as e:
            print(f"forgeml: could not flush {writer.pending()} {writer.what}(s): {e}", file=sys.stderr)


_exit_hook_pid: int | None = None


def _ensure_exit_flush() -> None:
    """Make sure this process flushes at exit, including multiprocessing children that skip atexit."""
    global _exit_hook_pid
    if _exit_hook_pid == os.getpid():
        return
    _exit_hook_pid = os.getpid()
    # forked multiprocessing workers leave through os._exit (no atexit) but run their finalizers;
    # registered here, at the child's first point, because the child clears inherited finalizers first
    mp_util: Any = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, flush_all, exitpriority=100)


def _child_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork_in_child()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_child_after_fork)


class Beside(threading.Thread):
    """One call run in a daemon thread beside the caller (overlapping I/O or GIL-free work with its own);
    the thread ends when the call returns."""

    def __init__(self, fn: Callable[[], Any], name: str = "forgeml-beside"):
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.value: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as e:  # handed to the caller, which raises it from result()
            self.error = e

    def result(self, timeout_s: float, what: str) -> Any:
        """Wait up to timeout_s for the call; return its value or raise what it raised (StorageError: too slow)."""
        self.join(timeout=timeout_s)
        if self.is_alive():
            raise StorageError(f"{what} did not finish within {timeout_s:g}s")
        if self.error is not None:
            raise self.error
        return self.value
