"""Periodic upkeep run by a long-running scheduler: plugins' ``forgeml_on_upkeep`` in a thread of its own.

The scheduler daemon is the workspace's one long-running process (one per workspace, under its
lock), so periodic work such as retention runs there instead of in cron. Each plugin decides
cheaply whether its work is due; the work runs beside the scheduling loop, never inside a cycle, so a
long pass never delays job placement, and a pass still running when the next is due is not doubled.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from forgeml.errors import ForgeError

log = logging.getLogger("forgeml.jobs")

UPKEEP_INTERVAL_S = 60.0  # how often the daemon asks plugins whether periodic work is due


class Upkeep:
    """Calls the upkeep hook at most every ``interval_s`` seconds, one pass at a time, in a daemon thread."""

    def __init__(self, ws: Any, interval_s: float = UPKEEP_INTERVAL_S):
        self.ws = ws
        self.interval_s = interval_s
        self._last = 0.0
        self._thread: threading.Thread | None = None

    def maybe_run(self, now: float | None = None) -> bool:
        """Start a pass when the interval has passed and none is running; return whether one started."""
        now = time.time() if now is None else now
        if now - self._last < self.interval_s or (self._thread is not None and self._thread.is_alive()):
            return False
        self._last = now
        self._thread = threading.Thread(target=self.run_once, args=(now,), name="forgeml-upkeep", daemon=True)
        self._thread.start()
        return True

    def run_once(self, now: float | None = None) -> None:
        """Run one upkeep pass in this thread; a failing plugin is logged and never stops the scheduler."""
        try:
            self.ws.plugins.on_upkeep(self.ws, time.time() if now is None else now)
        except ForgeError as e:
            log.error("upkeep failed: %s", e)
        except Exception:
            log.exception("upkeep failed")

    def join(self, timeout: float = 10.0) -> None:
        """Wait for a running pass to end (up to timeout seconds)."""
        if self._thread is not None:
            self._thread.join(timeout)
