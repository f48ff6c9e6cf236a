"""Principals and their roles in a workspace: grant, revoke, list, and who holds a role."""

from __future__ import annotations

from typing import Any

from forgeml.auth import store as db_
from forgeml.auth.policy import ROLES
from forgeml.auth.tokens import check_principal_name
from forgeml.errors import NotFoundError, ValidationError, did_you_mean

KINDS = ("user", "service")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}{did_you_mean(str(role), ROLES)}; roles: {', '.join(ROLES)}")
    return role


def grant(principal: str, role: str, kind: str = "user", workspace: Any = None) -> bool:
    """Give a principal a role (needs auth.admin); return False when it already held it.

    While nobody holds a role the workspace is personal and its OS user is admin; the first grant
    therefore also makes that OS user admin, so setting roles up never locks its author out.
    """
    from forgeml.auth.service import invalidate, local_name, require, resolve_workspace

    ws = resolve_workspace(workspace)
    check_principal_name(principal)
    _check_role(role)
    if kind not in KINDS:
        raise ValidationError(f"unknown principal kind {kind!r}; kinds: {', '.join(KINDS)}")
    actor = require("auth.admin", workspace=ws, subject=f"principal/{principal}")
    db = db_.auth_db(ws)
    if not db_.role_map(db) and actor.kind == "local":
        db_.insert_grant(db, local_name(), "user", "admin", actor.name)
    added = db_.insert_grant(db, principal, kind, role, actor.name)
    invalidate(ws)
    return added


def revoke_role(principal: str, role: str, workspace: Any = None) -> None:
    """Take a role from a principal (needs auth.admin)."""
    from forgeml.auth.service import invalidate, require, resolve_workspace

    ws = resolve_workspace(workspace)
    _check_role(role)
    actor = require("auth.admin", workspace=ws, subject=f"principal/{principal}")
    if not db_.delete_grant(db_.auth_db(ws), principal, role, actor.name):
        raise NotFoundError(f"{principal} does not hold the role {role!r}")
    invalidate(ws)


def list_principals(workspace: Any = None) -> list[dict[str, Any]]:
    """Return every principal with its kind and roles (needs auth.admin)."""
    from forgeml.auth.service import require, resolve_workspace

    ws = resolve_workspace(workspace)
    require("auth.admin", workspace=ws, subject="principals")
    return db_.principal_rows(db_.auth_db(ws))


def holds_role(name: str, role: str, workspace: Any = None) -> bool:
    """Return whether a principal holds role (admin holds every role; with no grants, everyone is admin)."""
    from forgeml.auth.service import cache_for, resolve_workspace

    cache = cache_for(resolve_workspace(workspace)).fresh()
    if not cache.roles:
        return True  # roles are not in use in this workspace
    roles = cache.roles_of(name)
    return role in roles or "admin" in roles
