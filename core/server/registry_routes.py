"""Registry routes: resolve name@stage|alias|version, list, register, promote, approve, alias, roll back."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from forgeml.auth.service import require
from forgeml.server.api import PREFIX, Call, Operation, Param, body_field, str_map
from forgeml.server.schemas import MODEL_VERSION, NAME, REF, obj

TAG = "registry"
_NAME = Param("name", "path", NAME, True, "Model name.")
_REF = Param("ref", "path", REF, True, "Version number, stage (production) or alias (champion).")


def _versioned(call: Call, mv: Any) -> dict[str, Any]:
    return _with_artifact_uri(call, mv.to_dict())


_BASES: dict[tuple[Any, ...], str] = {}  # few distinct values: the addresses clients reach this server by


def _base_url(call: Call) -> str:
    """Return the request's base URL, built once per scheme, host and root path rather than per request."""
    scope = call.request.scope
    key = (scope.get("scheme"), call.request.headers.get("host"), scope.get("server"), scope.get("root_path"))
    base = _BASES.get(key)
    if base is None:
        base = str(call.request.base_url).rstrip("/")
        if len(_BASES) < 64:  # Host is the client's to choose: never let the cache grow with it
            _BASES[key] = base
    return base


def _with_artifact_uri(call: Call, out: dict[str, Any]) -> dict[str, Any]:
    out["artifact_uri"] = f"{_base_url(call)}{PREFIX}/models/{out['name']}/versions/{out['version']}/artifact"
    return out


def _resolved(call: Call, name: str, ref: str, subject: str, cached_only: bool) -> dict[str, Any] | None:
    from forgeml.registry.cache import resolved_dict

    if "models.read" not in call.checked:  # once per request, though a cache miss asks twice
        require("models.read", model=name, workspace=call.workspace, subject=subject)
        call.checked.add("models.read")
    out = resolved_dict(name, ref, call.workspace, cached_only)
    return None if out is None else _with_artifact_uri(call, out)


def _uri_parts(call: Call) -> tuple[str, str]:
    from forgeml.registry.models import parse_uri

    return parse_uri(call.query["uri"])


def resolve_uri(call: Call) -> dict[str, Any] | None:
    """Resolve a model URI to its version, artifact, signature and feature views."""
    name, ref = _uri_parts(call)
    return _resolved(call, name, ref, f"models/{call.query['uri']}", False)


def resolve_uri_cached(call: Call) -> dict[str, Any] | None:
    """Answer a resolve from the cache on the event loop, or None to resolve it in a thread."""
    name, ref = _uri_parts(call)
    return _resolved(call, name, ref, f"models/{call.query['uri']}", True)


def _ref_subject(call: Call) -> str:
    return f"models/{call.path['name']}@{call.path['ref']}"


def show(call: Call) -> dict[str, Any] | None:
    """Return one version by number, stage or alias."""
    return _resolved(call, call.path["name"], call.path["ref"], _ref_subject(call), False)


def show_cached(call: Call) -> dict[str, Any] | None:
    """Answer show from the cache on the event loop, or None to look it up in a thread."""
    return _resolved(call, call.path["name"], call.path["ref"], _ref_subject(call), True)


def list_all(call: Call) -> dict[str, Any]:
    """List models with their latest and production versions."""
    from forgeml.registry import list_models

    require("models.read", workspace=call.workspace, subject="models")
    acting = call.principal
    rows = list_models(workspace=call.workspace)
    if acting.models is not None:  # a token scoped to some models sees only those
        from forgeml.auth.policy import decide

        rows = [r for r in rows if decide(acting, "models.read", r["name"]) is None]
    return {"models": rows}


def versions(call: Call) -> dict[str, Any]:
    """List every version of a model."""
    from forgeml.registry import list_versions

    name = call.path["name"]
    require("models.read", model=name, workspace=call.workspace)
    return {"versions": [_versioned(call, mv) for mv in list_versions(name, workspace=call.workspace)]}


def artifact(call: Call) -> Response:
    """Return a version's packed model (a tar of its folder), verified against its digest."""
    from forgeml.registry import get_model_version

    name = call.path["name"]
    require("models.read", model=name, workspace=call.workspace, subject=f"models/{name}@{call.path['ref']}")
    mv = get_model_version(name, call.path["ref"], workspace=call.workspace)
    data = call.workspace.artifacts.get_bytes(mv.artifact_digest)
    return Response(data, 200, {"X-Artifact-Digest": mv.artifact_digest}, "application/x-tar")


def register(call: Call) -> dict[str, Any]:
    """Register a model file or folder logged as an artifact of a run as the next version."""
    from forgeml.registry import register_model

    mv = register_model(
        call.path["name"], path=body_field(call, "path", str, what="the model's path inside the run's artifacts"),
        run_id=body_field(call, "run_id", str), flavor=body_field(call, "flavor", str, None),
        metrics=body_field(call, "metrics", dict, None), params=body_field(call, "params", dict, None),
        datasets=body_field(call, "datasets", list, None), feature_views=body_field(call, "feature_views", list, None),
        entity_keys=body_field(call, "entity_keys", list, None), tags=str_map(call.body.get("tags"), "tags"),
        description=body_field(call, "description", str, ""), workspace=call.workspace)
    return _versioned(call, mv)


def _result(call: Call, result: Any) -> dict[str, Any]:
    return {"model_version": _versioned(call, result.model_version), "old_stage": result.old_stage,
            "archived": result.archived.uri if result.archived else None,
            "gates": [{"gate": g.gate, "passed": g.passed, "message": g.message} for g in result.gates]}


def promote_version(call: Call) -> dict[str, Any]:
    """Move a version to a stage through the configured gates."""
    from forgeml.registry import promote

    result = promote(call.path["name"], call.path["ref"], body_field(call, "stage", str, "PRODUCTION"),
                     reason=body_field(call, "reason", str, ""), workspace=call.workspace)
    return _result(call, result)


def rollback_model(call: Call) -> dict[str, Any]:
    """Restore the previous production version."""
    from forgeml.registry import rollback

    return _result(call, rollback(call.path["name"], reason=body_field(call, "reason", str, ""),
                                  workspace=call.workspace))


def approve_version(call: Call) -> dict[str, Any]:
    """Record the acting principal's approval of a version."""
    from forgeml.registry import approve

    return approve(call.path["name"], call.path["ref"], comment=body_field(call, "comment", str, ""),
                   workspace=call.workspace)


def alias(call: Call) -> dict[str, Any]:
    """Point an alias at a version."""
    from forgeml.registry import set_alias

    version = body_field(call, "version", (int, str), what="a version number, stage or alias")
    return _versioned(call, set_alias(call.path["name"], call.path["alias"], version, workspace=call.workspace))


def trail(call: Call) -> dict[str, Any]:
    """Return the audit records of a model."""
    from forgeml.registry import audit_trail

    name = call.path["name"]
    require("models.read", model=name, workspace=call.workspace)
    return {"records": audit_trail(name, workspace=call.workspace)}


_REASON = {"reason": {"type": "string", "maxLength": 2000}}
OPERATIONS = [
    Operation("GET", "/resolve", resolve_uri, "Resolve name@stage|alias|version", TAG,
              [Param("uri", "query", {"type": "string", "minLength": 1, "maxLength": 300}, True,
                     "e.g. fraud@production, fraud@champion, fraud@3")], response=MODEL_VERSION,
              fast=resolve_uri_cached),
    Operation("GET", "/models", list_all, "List models", TAG),
    Operation("GET", "/models/{name}/versions", versions, "List a model's versions", TAG, [_NAME]),
    Operation("POST", "/models/{name}/versions", register, "Register a version from a run's artifact", TAG, [_NAME],
              obj({"run_id": {"type": "string"}, "path": {"type": "string"}, "flavor": {"type": "string"},
                   "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                   "params": {"type": "object"}, "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                   "description": {"type": "string"}}, ["run_id", "path"]), MODEL_VERSION, status=201),
    Operation("GET", "/models/{name}/versions/{ref}", show, "Show a version", TAG, [_NAME, _REF],
              response=MODEL_VERSION, fast=show_cached),
    Operation("GET", "/models/{name}/versions/{ref}/artifact", artifact, "Download a version's packed model", TAG,
              [_NAME, _REF]),
    Operation("POST", "/models/{name}/versions/{ref}/promote", promote_version, "Promote a version (gated)", TAG,
              [_NAME, _REF], obj({"stage": {"type": "string", "enum": ["STAGING", "CANDIDATE", "PRODUCTION",
                                                                         "ARCHIVED"]}, **_REASON})),
    Operation("POST", "/models/{name}/versions/{ref}/approve", approve_version, "Approve a version", TAG,
              [_NAME, _REF], obj({"comment": {"type": "string", "maxLength": 2000}})),
    Operation("POST", "/models/{name}/rollback", rollback_model, "Roll production back", TAG, [_NAME], obj(_REASON)),
    Operation("PUT", "/models/{name}/aliases/{alias}", alias, "Point an alias at a version", TAG,
              [_NAME, Param("alias", "path", NAME, True)],
              obj({"version": {"oneOf": [{"type": "integer"}, {"type": "string"}]}}, ["version"])),
    Operation("GET", "/models/{name}/audit", trail, "A model's audit trail", TAG, [_NAME]),
]
