"""Auth routes: who am I, tokens (create, list, revoke) and the access log."""

from __future__ import annotations

import dataclasses
from typing import Any

from forgeml.auth.service import require
from forgeml.server.api import Call, Operation, Param, body_field
from forgeml.server.schemas import obj

TAG = "auth"


def whoami(call: Call) -> dict[str, Any]:
    """Return the acting principal: name, roles, token and scopes."""
    from forgeml.auth.policy import allowed_actions

    p = call.principal
    allowed = sorted(allowed_actions(p.roles) & (p.operations if p.operations is not None else set(
        allowed_actions(p.roles))))
    return {"name": p.name, "kind": p.kind, "roles": sorted(p.roles), "token": p.token_id,
            "operations": allowed, "models": list(p.models) if p.models is not None else None}


def create(call: Call) -> dict[str, Any]:
    """Create a token (for yourself, or for anyone with auth.admin); the secret is in this answer only."""
    from forgeml.auth.tokens import create_token

    principal = body_field(call, "principal", str, call.principal.name)
    token, info = create_token(
        principal, operations=body_field(call, "operations", list, None), models=body_field(call, "models", list, None),
        expires_in_s=body_field(call, "expires_in_s", (int, float), 90 * 86400),
        description=body_field(call, "description", str, ""), role=body_field(call, "role", str, None),
        workspace=call.workspace)
    return {"token": token, **dataclasses.asdict(info)}


def tokens(call: Call) -> dict[str, Any]:
    """List tokens (all with auth.admin, else your own), never their secrets."""
    from forgeml.auth.tokens import list_tokens

    found = list_tokens(call.query.get("principal"), workspace=call.workspace)
    return {"tokens": [{**dataclasses.asdict(t), "state": t.state} for t in found]}


def revoke(call: Call) -> dict[str, Any]:
    """Revoke a token; it stops working at once."""
    from forgeml.auth.tokens import revoke_token

    return dataclasses.asdict(revoke_token(call.path["token_id"], workspace=call.workspace))


def access_log(call: Call) -> dict[str, Any]:
    """Return audit records, newest first: who did or read what, when and from where."""
    from forgeml.auth import store as db_
    from forgeml.auth.service import flush_access_log

    require("auth.admin", workspace=call.workspace, subject="audit")
    flush_access_log(call.workspace)
    rows = db_.access_rows(db_.auth_db(call.workspace), call.query.get("actor"), call.query.get("action"),
                           call.query.get("since", 0.0), call.query.get("limit", 200))
    return {"records": rows}


OPERATIONS = [
    Operation("GET", "/whoami", whoami, "The acting principal", TAG),
    Operation("POST", "/tokens", create, "Create a token", TAG, body=obj(
        {"principal": {"type": "string"}, "operations": {"type": "array", "items": {"type": "string"}},
         "models": {"type": "array", "items": {"type": "string"}}, "expires_in_s": {"type": "number"},
         "description": {"type": "string"}, "role": {"type": "string"}}), status=201),
    Operation("GET", "/tokens", tokens, "List tokens", TAG, [Param("principal", "query", {"type": "string"})]),
    Operation("DELETE", "/tokens/{token_id}", revoke, "Revoke a token", TAG,
              [Param("token_id", "path", {"type": "string", "pattern": "^[0-9a-f]{12}$"}, True)]),
    Operation("GET", "/audit", access_log, "Read the access log", TAG, [
        Param("actor", "query", {"type": "string"}), Param("action", "query", {"type": "string"}),
        Param("since", "query", {"type": "number"}),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000})]),
]
