"""Test support for forgeml and its plugin authors: conformance suites and pytest fixtures.

A conformance suite is a class of pytest tests for one contract; subclass it, name the subclass
``Test...`` and give it a ``store`` fixture that builds your implementation::

    class TestMyStore(OnlineStoreSuite):
        @pytest.fixture
        def open_store(self, tmp_path):
            return functools.partial(MyStore, tmp_path / "online.db")

Suites that prove persistence and sharing between processes take an ``open_store`` (or
``open_executor``...) fixture instead: a picklable callable opening the provider over the same data
at each call, so a test can open it again, here or in another process
(:func:`forgeml.testing.process.run_elsewhere`). Assertions in these modules are rewritten by
pytest, so a failure shows what was expected and what came back.

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
    "OfflineStoreSuite": "forgeml.testing.offline",
    "OnlineStoreSuite": "forgeml.testing.online",
    "EventStreamSuite": "forgeml.testing.streams",
    "VectorStoreSuite": "forgeml.testing.vectors",
    "ExecutorSuite": "forgeml.testing.compute",
    "GpuInventorySuite": "forgeml.testing.compute",
    "PlacementPolicySuite": "forgeml.testing.placement",
    "ModelRuntimeSuite": "forgeml.testing.runtimes",
    "PromotionGateSuite": "forgeml.testing.gates",
    "MonitorSuite": "forgeml.testing.monitors",
    "NotifierSuite": "forgeml.testing.notifiers",
    "AnnotationBackendSuite": "forgeml.testing.annotation",
    "QueryStrategySuite": "forgeml.testing.strategies",
    "RetrieverSuite": "forgeml.testing.recsys",
    "RerankerSuite": "forgeml.testing.recsys",
    "ProviderOpener": "forgeml.testing.process",
    "run_elsewhere": "forgeml.testing.process",
}

__all__ = list(_SUITES)


def __getattr__(name: str) -> Any:
    module = _SUITES.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
