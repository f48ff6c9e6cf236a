"""Shared pieces of the built-in conformance runs: every registered provider of a layer runs its layer's suite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing.process import ProviderOpener, registered


def each_provider(layer: str, needs: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] | None = None,
                  ) -> Callable[..., Any]:
    """A fixture parametrized over every registered provider of a layer, returning its ProviderOpener.

    ``needs`` maps a provider name to a function giving its settings from the test's fixtures
    (a server URL, a remote root); the rest open with their documented defaults.
    """
    needs = needs or {}

    @pytest.fixture(params=registered(layer))
    def opener(self: Any, request: pytest.FixtureRequest, tmp_path: Path) -> ProviderOpener:
        name = request.param
        settings = needs[name](request) if name in needs else {}
        return ProviderOpener(str(tmp_path / f"ws-{uuid.uuid4().hex[:6]}"), layer, name, settings)

    return opener
