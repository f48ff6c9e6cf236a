"""The system metrics sampler: CPU and memory through psutil, each visible GPU through the inventory."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from forgeml.errors import ForgeError

LogMetrics = Callable[[dict[str, float], int], None]
BASELINE_DELAY_S = 0.5


def visible_gpu_indexes(environ: dict[str, str] | None = None) -> set[int] | None:
    """Return the GPU indexes CUDA_VISIBLE_DEVICES allows (None: all; it may also name UUIDs)."""
    value = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return {int(p) for p in parts}


def sample(workspace: Any) -> dict[str, float]:
    """Take one sample of system/... metrics."""
    import psutil

    values: dict[str, float] = {
        "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
        "system/memory_percent": float(psutil.virtual_memory().percent),
    }
    try:
        devices = workspace.gpu_inventory.devices()
    except ForgeError:
        devices = []
    visible = visible_gpu_indexes()
    for d in devices:
        if visible is not None and d.index not in visible:
            continue
        prefix = f"system/gpu{d.index}"
        values[f"{prefix}/utilization"] = float(d.utilization_pct)
        values[f"{prefix}/memory_used_mb"] = float(d.memory_total_mb - d.memory_free_mb)
        if d.power_w is not None:
            values[f"{prefix}/power_w"] = float(d.power_w)
        if d.temperature_c is not None:
            values[f"{prefix}/temperature_c"] = float(d.temperature_c)
    return values


class SystemSampler:
    """A daemon thread that logs system metrics every interval_s seconds until stopped."""

    def __init__(self, workspace: Any, log: LogMetrics, interval_s: float):
        self.workspace = workspace
        self.log = log
        self.interval_s = max(0.05, float(interval_s))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def start(self) -> None:
        """Start sampling in the background."""
        self._thread = threading.Thread(target=self._loop, name="forgeml-system-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # psutil loads here, a moment after the start and off the caller's thread: a run's start never
        # waits for it, and a process that ends at once (a short job) never loads it at all
        settle = min(self.interval_s, BASELINE_DELAY_S)
        if self._stop.wait(settle):
            return
        import psutil

        psutil.cpu_percent(interval=None)  # the first reading only sets the baseline
        if self.interval_s > settle and self._stop.wait(self.interval_s - settle):
            return
        while True:
            self.log(sample(self.workspace), self.samples)
            self.samples += 1
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
