"""The OpenAPI 3.1 document of `forgeml server`, built from the operations the routes declare."""

from __future__ import annotations

import re
from typing import Any

import forgeml
from forgeml.server.api import PREFIX, Operation
from forgeml.server.schemas import ERROR

_ERRORS = {
    "401": "No bearer token, or an unknown, wrong, revoked or expired one.",
    "403": "The principal's roles or the token's scopes do not allow this operation.",
    "404": "A named thing does not exist.",
    "409": "Refused by the state of things: a failed gate, a racing promotion, a finished job.",
    "422": "The request is malformed: a bad parameter or body.",
    "429": "Rate limit exceeded; Retry-After says when to come back.",
}


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": op.call.__module__.rsplit(".", 1)[-1]
                           .replace("_routes", "") + "_" + op.call.__name__, "tags": [op.tag],
                           "security": [{"bearer": []}]}
    if op.params:
        out["parameters"] = [{"name": p.name, "in": p.where, "required": p.required, "schema": p.schema,
                              "description": p.doc} for p in op.params]
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    elif op.raw_body:
        out["requestBody"] = {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    ok = {"description": "Success."}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": op.response}}
    responses: dict[str, Any] = {str(op.status): ok}
    for code, text in _ERRORS.items():
        responses[code] = {"description": text,
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    out["responses"] = responses
    return out


def openapi_document(ops: list[Operation]) -> dict[str, Any]:
    """Return the OpenAPI document describing every operation."""
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", PREFIX + op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "forgeml platform API", "version": forgeml.__version__,
                 "description": "Registry, runs, jobs, datasets, features and alerts of one workspace."},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
