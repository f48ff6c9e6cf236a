"""The feature store: definitions, point-in-time joins, materialization and online reads.

Module-level functions use the current workspace (FORGEML_HOME or the nearest ``.forgeml/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from forgeml.lazy import lazy_exports

if TYPE_CHECKING:
    from forgeml.features.registry import Change
    from forgeml.features.retrieval import OnlineFeatures
    from forgeml.features.status import ViewStatus

_FUNCTIONS = ["apply", "compact", "get_historical_features", "get_online_features", "lineage", "materialize", "nearest",
              "publish", "push", "record_lineage", "status"]
_EXPORTED, __getattr__, __dir__ = lazy_exports(__name__, {
    ".aggregations": ["Aggregation"],
    ".definitions": ["Embedding", "Entity", "Feature", "FeatureView", "Field", "FileSource", "OnDemandFeatureView",
                     "PushSource", "RequestSource", "SqlSource", "StreamSource", "Transformation"],
    ".registry": ["Change", "load_definitions"],
    ".retrieval": ["OnlineFeatures"],
    ".service": ["FeatureStore", "store_for"],
    ".status": ["ViewStatus"],
})
__all__ = sorted([*_EXPORTED, *_FUNCTIONS])


def _store() -> Any:
    # imported here: the package itself stays cheap to import (see forgeml.lazy)
    from forgeml.features.service import store_for

    return store_for()


def apply(objects: Iterable[Any]) -> list[Change]:
    """Register definitions in the current workspace's feature registry."""
    return _store().apply(objects)


def compact(view: str, min_files: int = 2) -> dict[str, Any]:
    """Rewrite a view's small offline files into one per date, atomically for readers (see FeatureStore.compact)."""
    return _store().compact(view, min_files)


def get_historical_features(entity_df: Any, features: Sequence[str], full_feature_names: bool = False,
                            timestamp_field: str = "event_timestamp") -> Any:
    """Return a point-in-time correct training set for entity_df (see FeatureStore.get_historical_features)."""
    return _store().get_historical_features(entity_df, features, full_feature_names, timestamp_field)


def get_online_features(entity_rows: Any, features: Sequence[str], full_feature_names: bool = False) -> OnlineFeatures:
    """Return the latest feature values with per-feature freshness (see FeatureStore.get_online_features)."""
    from forgeml.client import remote

    if (client := remote()) is not None:
        from forgeml.features import remote as via_server

        return via_server.get_online_features(client, entity_rows, list(features), full_feature_names)
    return _store().get_online_features(entity_rows, features, full_feature_names)


def push(view: str, rows: Any, to: str = "online_and_offline", bad_rows: str = "refuse") -> int:
    """Write rows online and append them offline through the view's transformation (see FeatureStore.push)."""
    from forgeml.client import remote

    if (client := remote()) is not None:
        from forgeml.features import remote as via_server

        if bad_rows != "refuse":
            from forgeml.errors import ValidationError

            raise ValidationError("push(bad_rows='dead_letter') runs in the serving process: POST /v1/push/{view} "
                                  'with "bad_rows": "dead_letter"')
        return via_server.push(client, view, rows, to)
    return _store().push(view, rows, to, bad_rows)


def publish(stream: str, rows: Any) -> int:
    """Append events to a stream declared as [streams.NAME] in plugins.toml."""
    return _store().publish(stream, rows)


def materialize(start: Any = None, end: Any = None, views: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Materialize views into the online store from their watermarks."""
    return _store().materialize(start, end, views)


def nearest(view: str, vector: Sequence[float], k: int = 10, filter: str | None = None,
            feature: str | None = None) -> Any:
    """Return the k nearest entities of an embedding view."""
    return _store().nearest(view, vector, k, filter, feature)


def status() -> list[ViewStatus]:
    """Return each view's freshness against its SLA."""
    return _store().status()


def record_lineage(src_kind: str, src: str, dst_kind: str, dst: str) -> None:
    """Record a lineage edge (e.g. "view", "users", "dataset", "train@v3") in the current workspace."""
    _store().record_lineage(src_kind, src, dst_kind, dst)


def lineage(kind: str, name: str) -> dict[str, list[dict[str, str]]]:
    """Return every edge upstream and downstream of a node in the current workspace."""
    return _store().lineage(kind, name)
