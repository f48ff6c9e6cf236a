"""Model serving: the HTTP server, dynamic batching, traffic policies and batch inference."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".predlog": ["read_prediction_log", "PredictionLogger"],
    ".app": ["build_app", "ServerOptions"],
    ".endpoint": ["EndpointConfig"],
    ".batching": ["BatchingConfig"],
    ".traffic": ["CanaryConfig"],
    ".batch": ["predict_batch"],
})
