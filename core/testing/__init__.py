"""Test support for forgeml and its plugin authors: conformance suites and pytest fixtures.

A conformance suite is a class of pytest tests for one contract; subclass it, name the subclass
``Test...`` and give it a ``store`` fixture that builds your implementation::

    class TestMyStore(MetadataStoreSuite):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path / "meta.db")

Each suite lives in its own module (``forgeml.testing.metadata``, ``forgeml.testing.artifacts``,
one module per further contract); the names below are importable from ``forgeml.testing``.
"""

from __future__ import annotations

import importlib
from typing import Any

# suite name -> module that defines it; imported on first use so each layer's suite loads alone
_SUITES: dict[str, str] = {
    "MetadataStoreSuite": "forgeml.testing.metadata",
    "ArtifactStoreSuite": "forgeml.testing.artifacts",
    "OnlineStoreSuite": "forgeml.testing.online",
}

__all__ = list(_SUITES)


def __getattr__(name: str) -> Any:
    module = _SUITES.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
