"""Fixtures for the jobs layer: a workspace with declared fake GPUs (no hardware) and a fast scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_support import kill_leftovers, open_workspace


@pytest.fixture
def jobs_ws(workspace: Any) -> Iterator[Any]:
    """A workspace whose scheduler sees 4 declared fake H100s (no hardware), polls every 50 ms and backs off 0.3 s."""
    ws = open_workspace(Path(workspace.root))
    try:
        yield ws
    finally:
        kill_leftovers(ws)
        ws.close()
