"""Data routes: dataset versions, feature registry metadata, online feature reads and pushes, alerts."""

from __future__ import annotations

import dataclasses
from typing import Any

from forgeml.auth.service import require
from forgeml.errors import ValidationError
from forgeml.server.api import Call, Operation, Param, body_field
from forgeml.server.schemas import NAME, obj

_NAME = Param("name", "path", NAME, True)
_ROWS = {"type": "array", "minItems": 1, "items": {"type": "object"}}


def datasets(call: Call) -> dict[str, Any]:
    """List datasets with their latest version."""
    from forgeml.datasets import list_datasets

    require("datasets.read", workspace=call.workspace, subject="datasets")
    return {"datasets": list_datasets(workspace=call.workspace)}


def dataset_versions(call: Call) -> dict[str, Any]:
    """List a dataset's versions: schema, rows, digest, source."""
    from forgeml.datasets import list_versions

    require("datasets.read", workspace=call.workspace, subject=f"datasets/{call.path['name']}")
    return {"versions": [dataclasses.asdict(v) for v in list_versions(call.path["name"], workspace=call.workspace)]}


def feature_views(call: Call) -> dict[str, Any]:
    """List the feature registry's views with their specs."""
    from forgeml.features.service import store_for

    require("features.read", workspace=call.workspace, subject="features")
    return {"feature_views": [fv.to_spec() for fv in store_for(call.workspace).list_feature_views()]}


def feature_view(call: Call) -> dict[str, Any]:
    """Return one feature view's spec."""
    from forgeml.features.service import store_for

    require("features.read", workspace=call.workspace, subject=f"features/{call.path['name']}")
    return store_for(call.workspace).get_feature_view(call.path["name"]).to_spec()


def online(call: Call) -> dict[str, Any]:
    """Read the latest feature values for entity rows (columns: entity keys, then features)."""
    from forgeml.features.service import store_for

    features = body_field(call, "features", list, what="feature references such as 'users:age'")
    if not features or not all(isinstance(f, str) for f in features):
        raise ValidationError("'features' must be a non-empty list of strings such as 'users:age'")
    rows = body_field(call, "entities", list, what="entity rows such as [{'user_id': 1}]")
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValidationError("'entities' must be a non-empty list of objects")
    require("features.read", workspace=call.workspace, subject="features/" + ",".join(sorted(features))[:500])
    for view in sorted({f.split(":", 1)[0] for f in features}):
        call.options.check_rows(len(rows), view)
    answer = store_for(call.workspace).get_online_features(
        rows, features, bool(body_field(call, "full_feature_names", bool, False)))
    stamps = answer.event_timestamps
    return {"columns": answer.to_dict(), "features": list(stamps),
            "event_us": {k: [None if t is None else int(t.timestamp() * 1e6) for t in v] for k, v in stamps.items()}}


def push_rows(call: Call) -> dict[str, Any]:
    """Push rows to a view's online and offline stores through its transformation."""
    import pandas as pd

    from forgeml.features.service import store_for

    rows = body_field(call, "rows", list, what="rows as objects")
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValidationError("'rows' must be a non-empty list of objects")
    call.options.check_rows(len(rows), call.path["name"])
    to = body_field(call, "to", str, "online_and_offline")
    frame = pd.DataFrame(rows)
    for column in frame.columns:  # JSON carries times as text; a timestamp column must be a datetime
        if "time" in str(column) and frame[column].dtype == object:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="raise", format="ISO8601")
    return {"rows": store_for(call.workspace).push(call.path["name"], frame, to)}


def alerts(call: Call) -> dict[str, Any]:
    """List alerts, newest first (unresolved ones unless status says otherwise)."""
    from forgeml.monitoring import list_alerts

    require("alerts.read", workspace=call.workspace, subject="alerts")
    found = list_alerts(call.query.get("status"), call.query.get("rule"), call.query.get("limit", 100),
                        workspace=call.workspace)
    return {"alerts": [dataclasses.asdict(a) for a in found]}


def ack(call: Call) -> dict[str, Any]:
    """Acknowledge an alert."""
    from forgeml.monitoring import acknowledge

    return dataclasses.asdict(acknowledge(call.path["alert_id"], workspace=call.workspace))


OPERATIONS = [
    Operation("GET", "/datasets", datasets, "List datasets", "datasets"),
    Operation("GET", "/datasets/{name}/versions", dataset_versions, "List a dataset's versions", "datasets", [_NAME]),
    Operation("GET", "/features/views", feature_views, "List feature views", "features"),
    Operation("GET", "/features/views/{name}", feature_view, "Show a feature view", "features", [_NAME]),
    Operation("POST", "/features/online", online, "Read online features", "features", body=obj(
        {"features": {"type": "array", "minItems": 1, "items": {"type": "string"}}, "entities": _ROWS,
         "full_feature_names": {"type": "boolean"}}, ["features", "entities"])),
    Operation("POST", "/features/views/{name}/push", push_rows, "Push rows to a view", "features", [_NAME], obj(
        {"rows": _ROWS, "to": {"type": "string", "enum": ["online_and_offline", "online", "offline"]}}, ["rows"])),
    Operation("GET", "/alerts", alerts, "List alerts", "alerts", [
        Param("status", "query", {"type": "string", "enum": ["open", "acknowledged", "resolved", "all"]}),
        Param("rule", "query", {"type": "string"}),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000})]),
    Operation("POST", "/alerts/{alert_id:int}/ack", ack, "Acknowledge an alert", "alerts",
              [Param("alert_id", "path", {"type": "integer", "minimum": 0, "maximum": 2**62}, True)], obj({})),
]
