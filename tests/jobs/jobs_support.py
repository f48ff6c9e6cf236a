"""Helpers for the jobs tests: a fast configuration with declared fake GPUs, scripts, cleanup.

GPUs cannot be used here, so these workspaces use the ``declared`` inventory plugin: four fake
H100s that placement hands out and jobs see in CUDA_VISIBLE_DEVICES, without touching hardware.
Jobs themselves are real processes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

FAST_CONFIG = """
[scheduler]
poll_interval_s = 0.05
grace_period_s = 1.0
backoff_base_s = 0.3
backoff_factor = 2.0

[scheduler.inventory]
plugin = "declared"
count = 4
"""


def open_workspace(root: Path, extra: str = "") -> Any:
    """Rewrite plugins.toml with the fast test configuration and open the workspace again."""
    from forgeml.workspace import Workspace, set_current

    (root / "plugins.toml").write_text(FAST_CONFIG + textwrap.dedent(extra))
    ws = Workspace(root)
    set_current(ws)
    return ws


def write_script(ws: Any, name: str, body: str) -> str:
    """Write a Python job script into the workspace and return its name."""
    (Path(ws.root) / name).write_text(textwrap.dedent(body))
    return name


def kill_leftovers(ws: Any) -> None:
    """SIGKILL every attempt a test left running, so no process outlives its test."""
    from forgeml.jobs.queue import jobs_store

    try:
        rows = jobs_store(ws).query("SELECT target, handle FROM jobs WHERE state = 'RUNNING' AND handle IS NOT NULL")
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own failure
        return
    for row in rows:
        executor = ws.executor(row["target"])
        kill = getattr(executor, "kill", None)
        if kill:
            kill(row["handle"])


