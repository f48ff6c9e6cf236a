"""Pytest fixtures for forgeml and its plugin authors (loaded through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh workspace in a temporary folder, made current for the module-level API."""
    from forgeml.workspace import Workspace, set_current

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    monkeypatch.chdir(root)
    set_current(ws)
    try:
        yield ws
    finally:
        set_current(None)
        ws.close()
