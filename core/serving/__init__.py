"""Model serving: the HTTP server, dynamic batching, traffic policies and batch inference."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "read_prediction_log": "forgeml.serving.predlog",
    "PredictionLogger": "forgeml.serving.predlog",
    "build_app": "forgeml.serving.app",
    "ServerOptions": "forgeml.serving.app",
    "EndpointConfig": "forgeml.serving.endpoint",
    "BatchingConfig": "forgeml.serving.batching",
    "CanaryConfig": "forgeml.serving.traffic",
    "predict_batch": "forgeml.serving.batch",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
