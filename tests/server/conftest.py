"""Fixtures for the platform API tests: a workspace with one token per role and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from server_support import ApiServer, role_tokens


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ApiServer, dict[str, str]]]:
    """A workspace with tokens for viewer, scientist, approver and admin, served by `forgeml server`."""
    from forgeml.workspace import Workspace, set_current

    root = tmp_path_factory.mktemp("platform") / "ws"
    Workspace.init(root).close()
    with open(root / "plugins.toml", "a") as f:  # the server reads gates at start
        f.write('\n[registry.models.gated]\ngates = [{ gate = "approvals", '
                'reviewers = ["scientist-user", "approver-user"], min_approvals = 1 }]\n')
    ws = Workspace(root)
    set_current(ws)
    tokens = role_tokens(ws)
    server = ApiServer(root).wait_ready()
    try:
        yield ws, server, tokens
    finally:
        server.stop()
        set_current(None)
        ws.close()
