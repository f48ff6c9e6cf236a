"""The OpenAPI document of a running server, built from each served model's signature."""

from __future__ import annotations

from typing import Any

import forgeml

ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
         "required": ["error"]}
_ERRORS = {
    "400": "The body is not valid JSON.",
    "401": "A bearer token is required and was missing or wrong.",
    "404": "No model with this name is served.",
    "413": "The body is larger than the server's limit.",
    "422": "The body does not fit the model's signature; `field` names the offending field.",
    "503": "The model is still loading.",
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _predict_operation(name: str, endpoint: Any) -> dict[str, Any]:
    served = endpoint.primary
    bodies: list[dict[str, Any]] = []
    key = {"type": "string", "description": "Routing key hashed for A/B splits and canaries (sticky)."}
    explain = {"explain": {"type": "boolean", "description": "Add each row's top reasons (feature attributions)."},
               "top_k": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Reasons per row (3)."}}
    if served is not None:
        bodies.append({"type": "object", "title": f"{name} rows",
                       "properties": {"rows": {"type": "array", "minItems": 1, "items": served.signature.json_schema()},
                                      "key": key, **explain},
                       "required": ["rows"], "additionalProperties": False})
        if served.entity_keys and served.feature_refs:
            names = list(served.entity_keys) + served.request_columns
            row = served.signature.json_schema(names)
            for k in served.entity_keys:
                row["properties"].setdefault(k, {"type": ["string", "integer"]})
            row["required"] = names
            # request values read by on-demand features pass through to the feature store
            row["additionalProperties"] = {"type": ["string", "number", "boolean"]}
            bodies.append({"type": "object", "title": f"{name} entities",
                           "properties": {"entities": {"type": "array", "minItems": 1, "items": row}, "key": key,
                                          **explain},
                           "required": ["entities"], "additionalProperties": False})
    else:
        bodies.append({"type": "object"})
    schema = bodies[0] if len(bodies) == 1 else {"oneOf": bodies}
    version = served.version if served is not None else None
    out_item: dict[str, Any] = {} if served is None else {
        # null: a model may output NaN or infinity (e.g. on extreme inputs), which JSON carries as null
        "anyOf": [{"type": served.signature.output_type}, {"type": "array"}, {"type": "string"}, {"type": "null"}]}
    response = {"type": "object", "required": ["model", "version", "predictions"],
                "properties": {"model": {"type": "string"}, "version": {"type": "integer"},
                               "arm": {"type": "string"}, "request_id": {"type": "string"},
                               "predictions": {"type": "array", "items": out_item},
                               "explanations": {"type": "array", "items": {"type": "object"}}}}
    responses: dict[str, Any] = {"200": {"description": f"Predictions of {name} (version {version} when "
                                                        "this document was built).", "content": _json_content(response)}}
    for code, text in _ERRORS.items():
        responses[code] = {"description": text, "content": _json_content({"$ref": "#/components/schemas/Error"})}
    return {"summary": f"Predict with {name}", "operationId": f"predict_{name}",
            "requestBody": {"required": True, "content": _json_content(schema)}, "responses": responses}


def openapi_document(state: Any) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for every endpoint a server state holds."""
    paths: dict[str, Any] = {}
    for name, endpoint in state.endpoints.items():
        paths[f"/v1/models/{name}/predict"] = {"post": _predict_operation(name, endpoint)}
    security: list[dict[str, Any]] = [{"bearer": []}] if state.options.token else []
    obj = {"type": "object"}
    paths["/v1/models"] = {"get": {"summary": "List served models", "operationId": "list_models",
                                   "responses": {"200": {"description": "Served models.",
                                                         "content": _json_content(obj)}}}}
    outcome = {"type": "object", "required": ["request_id"], "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.\\-]{0,63}$"},
        "value": {"type": ["number", "null"]}, "time": {"type": "string", "format": "date-time"}}}
    paths["/v1/outcomes"] = {"post": {
        "summary": "Record late labels and events of served requests", "operationId": "post_outcomes",
        "requestBody": {"required": True, "content": _json_content({"type": "object", "required": ["outcomes"],
            "properties": {"outcomes": {"type": "array", "minItems": 1, "maxItems": 100_000, "items": outcome}}})},
        "responses": {"200": {"description": "Outcomes stored.", "content": _json_content(obj)},
                      "422": {"description": "An outcome was malformed; none stored.",
                              "content": _json_content({"$ref": "#/components/schemas/Error"})}}}}
    paths["/healthz"] = {"get": {"summary": "Liveness", "operationId": "healthz", "security": [],
                                 "responses": {"200": {"description": "Alive.", "content": _json_content(obj)}}}}
    paths["/readyz"] = {"get": {"summary": "Readiness", "operationId": "readyz", "security": [],
                                "responses": {"200": {"description": "Every model loaded and warmed.",
                                                      "content": _json_content(obj)},
                                              "503": {"description": "Still loading.", "content": _json_content(obj)}}}}
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "security": [],
                                 "responses": {"200": {"description": "Exposition text.",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "forgeml serving", "version": forgeml.__version__},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR}},
    }
    if security:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = security
    return doc
