"""Fixtures for pipeline tests: a workspace opened with a given plugins.toml."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def configure(workspace: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Write plugins.toml into the test workspace and reopen it (made current) with that configuration."""
    from forgeml.workspace import Workspace, set_current

    opened = []

    def apply(text: str) -> Any:
        (workspace.root / "plugins.toml").write_text(text)
        ws = Workspace(workspace.root)
        set_current(ws)
        opened.append(ws)
        return ws

    yield apply
    for ws in opened:
        ws.close()
