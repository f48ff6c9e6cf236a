"""API tokens: created and shown once, stored as salted hashes, with an expiry and scopes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from forgeml.auth import store as db_
from forgeml.auth.policy import ACTIONS, ROLES
from forgeml.errors import NotFoundError, ValidationError, did_you_mean

PREFIX = "fml_"
_TOKEN = re.compile(r"^fml_([0-9a-f]{12})_([A-Za-z0-9_\-]{20,100})$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$")


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as listed: never its secret, only who holds it, its scopes and its lifetime."""

    id: str
    principal: str
    operations: list[str] | None
    models: list[str] | None
    description: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    @property
    def state(self) -> str:
        """Return "revoked", "expired" or "active"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= time.time():
            return "expired"
        return "active"


def hash_secret(salt: str, secret: str) -> str:
    """Return the hex SHA-256 of salt and secret.

    A fast hash is enough here: secrets are 256 random bits, so there is nothing to brute-force, and
    a slow password hash would cost milliseconds on every request.
    """
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """Return (token id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(row: dict[str, Any], secret: str) -> bool:
    """Compare a secret with a stored row's hash in constant time."""
    return hmac.compare_digest(hash_secret(row["salt"], secret), row["secret_hash"])


def check_principal_name(name: str) -> str:
    """Validate a principal name (a login or a service name)."""
    if not isinstance(name, str) or not _PRINCIPAL.match(name):
        raise ValidationError(f"invalid principal name {name!r}: use letters, digits, '_', '-', '.' and '@' "
                              "(at most 128 characters)")
    return name


def check_scopes(operations: list[str] | None, models: list[str] | None) -> None:
    """Refuse unknown operations and empty model patterns."""
    for what, values in (("operations", operations), ("models", models)):
        if values is not None and (not isinstance(values, list) or not all(isinstance(v, str) for v in values)):
            raise ValidationError(f"token {what} must be a list of strings")
    for op in operations or []:
        if op not in ACTIONS:
            raise ValidationError(f"unknown operation {op!r}{did_you_mean(op, ACTIONS)}; "
                                  f"operations: {', '.join(ACTIONS)}")
    for pattern in models or []:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValidationError("a model scope must be a name or a pattern such as 'fraud*'")


def create_token(principal: str, *, operations: list[str] | None = None, models: list[str] | None = None,
                 expires_in_s: float | None = 90 * 86400, description: str = "", kind: str = "service",
                 role: str | None = None, workspace: Any = None) -> tuple[str, TokenInfo]:
    """Create a token for principal and return (the token, shown only now; its stored info).

    Creating a token for someone else, or granting a role with it, needs auth.admin; anyone may
    create a token for themselves, which can never do more than their roles allow.
    """
    from forgeml.auth.principals import grant
    from forgeml.auth.service import require, resolve_workspace

    ws = resolve_workspace(workspace)
    check_principal_name(principal)
    check_scopes(operations, models)
    if role is not None and role not in ROLES:
        raise ValidationError(f"unknown role {role!r}{did_you_mean(role, ROLES)}; roles: {', '.join(ROLES)}")
    if expires_in_s is not None and not expires_in_s > 0:
        raise ValidationError(f"a token's lifetime must be positive seconds, got {expires_in_s!r}")
    actor = require("auth.admin", workspace=ws, subject=f"principal/{principal}", unless_self=principal)
    if role is not None:
        grant(principal, role, kind=kind, workspace=ws)
    now = time.time()
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    row = {"id": token_id, "principal": principal, "salt": salt, "secret_hash": hash_secret(salt, secret),
           "operations": sorted(set(operations)) if operations is not None else None,
           "models": list(models) if models is not None else None, "description": description,
           "created_at": now, "expires_at": None if expires_in_s is None else now + float(expires_in_s)}
    db = db_.auth_db(ws)
    db_.insert_token(db, row, kind, actor.name)
    from forgeml.auth.service import invalidate

    invalidate(ws)
    return f"{PREFIX}{token_id}_{secret}", _info(row | {"revoked_at": None})


def _info(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=row["id"], principal=row["principal"], operations=row["operations"], models=row["models"],
                     description=row["description"], created_at=row["created_at"], expires_at=row["expires_at"],
                     revoked_at=row["revoked_at"])


def list_tokens(principal: str | None = None, workspace: Any = None) -> list[TokenInfo]:
    """Return tokens (all with auth.admin, else the caller's own), oldest first."""
    from forgeml.auth.policy import decide
    from forgeml.auth.service import current_principal, require, resolve_workspace

    ws = resolve_workspace(workspace)
    acting = current_principal(ws)
    if principal is None and decide(acting, "auth.admin") is not None:
        principal = acting.name  # without auth.admin, "all tokens" means your own
    require("auth.admin", workspace=ws, subject="tokens", unless_self=principal)
    return [_info(r) for r in db_.token_rows(db_.auth_db(ws), principal)]


def revoke_token(token_id: str, workspace: Any = None) -> TokenInfo:
    """Revoke a token by id (its holder or an admin may); it stops working at once."""
    from forgeml.auth.service import invalidate, require, resolve_workspace

    ws = resolve_workspace(workspace)
    db = db_.auth_db(ws)
    rows = [r for r in db_.token_rows(db) if r["id"] == token_id]
    if not rows:
        known = [r["id"] for r in db_.token_rows(db)]
        raise NotFoundError(f"no token {token_id!r}{did_you_mean(token_id, known)}; list them with "
                            "`forgeml auth token ls`")
    actor = require("auth.admin", workspace=ws, subject=f"token/{token_id}", unless_self=rows[0]["principal"])
    if not db_.mark_revoked(db, token_id, actor.name):
        raise ValidationError(f"token {token_id} is already revoked")
    invalidate(ws)
    return _info({**rows[0], "revoked_at": time.time()})
