"""forgeml: a local-first, plugin-based machine-learning platform.

The public API is loaded lazily so that ``import forgeml`` stays fast and pulls in no engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from forgeml.errors import ForgeError

if TYPE_CHECKING:
    from forgeml.hookspecs import hookimpl as hookimpl

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access
_LAZY: dict[str, str] = {
    # plugins write `from forgeml import hookimpl`; pluggy loads only then, not on `import forgeml`
    "hookimpl": "forgeml.hookspecs",
    "Workspace": "forgeml.workspace",
    # tracking
    "start_run": "forgeml.tracking",
    "active_run": "forgeml.tracking",
    "end_run": "forgeml.tracking",
    "log_param": "forgeml.tracking",
    "log_params": "forgeml.tracking",
    "log_metric": "forgeml.tracking",
    "log_metrics": "forgeml.tracking",
    "set_tags": "forgeml.tracking",
    "set_tag": "forgeml.tracking",
    "log_artifact": "forgeml.tracking",
    "log_dict": "forgeml.tracking",
    "log_text": "forgeml.tracking",
    "log_throughput": "forgeml.tracking",
    "flush": "forgeml.tracking",
    "search_runs": "forgeml.tracking",
    # jobs
    "JobSpec": "forgeml.jobs",
    "submit": "forgeml.jobs",
    "checkpoint": "forgeml.jobs",
    "resume": "forgeml.jobs",
    "should_stop": "forgeml.jobs",
    # features
    "Entity": "forgeml.features",
    "FeatureView": "forgeml.features",
    "Feature": "forgeml.features",
    "FileSource": "forgeml.features",
    "Aggregation": "forgeml.features",
    "StreamSource": "forgeml.features",
    "get_historical_features": "forgeml.features",
    "get_online_features": "forgeml.features",
    "push": "forgeml.features",
    "nearest": "forgeml.features",
    # tuning
    "trial_params": "forgeml.tuning",
    "report": "forgeml.tuning",
    "should_prune": "forgeml.tuning",
    "TrialPruned": "forgeml.tuning",
    # pipelines
    "step": "forgeml.pipelines",
    "pipeline": "forgeml.pipelines",
    # registry
    "register_model": "forgeml.registry",
    "get_model_version": "forgeml.registry",
    "load_model": "forgeml.registry",
    "promote": "forgeml.registry",
    "rollback": "forgeml.registry",
    # datasets
    "register_dataset": "forgeml.datasets",
    "read_dataset": "forgeml.datasets",
    # evaluation
    "evaluate": "forgeml.evaluation",
    # experiments
    "log_outcome": "forgeml.feedback",
    "log_outcomes": "forgeml.feedback",
}

__all__ = ["ForgeError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
