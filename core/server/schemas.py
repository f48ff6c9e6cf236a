"""JSON schemas shared by the OpenAPI document of `forgeml server`."""

from __future__ import annotations

from typing import Any

NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\-]*$", "maxLength": 200}
REF = {"type": "string", "minLength": 1, "maxLength": 200}
ID = {"type": "string", "pattern": "^[0-9a-f]{4,64}$"}
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "type": {"type": "string"}},
         "required": ["error"]}
MODEL_VERSION = {"type": "object", "required": ["name", "version", "stage", "uri", "artifact_uri"],
                 "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                                "stage": {"type": "string"}, "uri": {"type": "string"},
                                "artifact_uri": {"type": "string"}, "artifact_digest": {"type": "string"},
                                "signature": {"type": "object"},
                                "feature_views": {"type": "array", "items": {"type": "string"}},
                                "entity_keys": {"type": "array", "items": {"type": "string"}},
                                "aliases": {"type": "array", "items": {"type": "string"}}}}


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """Return a JSON object schema with these properties."""
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out
