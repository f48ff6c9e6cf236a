"""Feature reads and pushes through `forgeml server` (FORGEML_URL), in the local API's shapes."""

from __future__ import annotations

import json
from typing import Any

from forgeml.features.retrieval import OnlineFeatures


def get_online_features(client: Any, entity_rows: Any, features: list[str], full_feature_names: bool) -> Any:
    """Read online features from the server; the answer has the local API's shape."""
    rows = entity_rows.to_dict("records") if hasattr(entity_rows, "to_dict") else list(entity_rows)
    answer = client.call("POST", "/features/online", json={"entities": rows, "features": list(features),
                                                           "full_feature_names": full_feature_names})
    columns = answer["columns"]
    order = answer["features"]
    entities = {k: v for k, v in columns.items() if k not in order}
    return OnlineFeatures(entities, {k: columns[k] for k in order},
                          {k: answer["event_us"].get(k, [None] * len(rows)) for k in order}, order)


def push(client: Any, view: str, rows: Any, to: str) -> int:
    """Push rows to a view through the server."""
    if hasattr(rows, "to_json"):
        records = json.loads(rows.to_json(orient="records", date_format="iso"))
    else:
        records = list(rows)
    return client.call("POST", f"/features/views/{view}/push", json={"rows": records, "to": to})["rows"]
