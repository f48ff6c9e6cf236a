"""The auth layer's persistence: principals, role grants, token hashes and the access log, in portable SQL.

Every statement of the layer lives here, so moving it to another metadata engine touches one module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from forgeml import counters
from forgeml.auth import audit
from forgeml.contracts import Migration

MIGRATION_SET = "auth"
GENERATION_KEY = "auth.generation"


def _m001_initial(tx: Any) -> None:
    """Create the auth tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import create_tables

    metadata = sa.MetaData()
    sa.Table(
        "auth_principals", metadata,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    sa.Table(
        "auth_roles", metadata,
        sa.Column("principal", sa.Text, sa.ForeignKey("auth_principals.name"), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("granted_at", sa.Double, nullable=False),
        sa.Column("granted_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("principal", "role"),
    )
    sa.Table(
        "auth_tokens", metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("principal", sa.Text, sa.ForeignKey("auth_principals.name"), nullable=False),
        sa.Column("salt", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("operations", sa.Text),
        sa.Column("models", sa.Text),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double),
        sa.Column("revoked_at", sa.Double),
        sa.Index("auth_tokens_principal", "principal"),
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
]


def auth_db(workspace: Any) -> Any:
    """Return the workspace's metadata store with the auth tables migrated."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)


def _bump(tx: Any) -> None:
    """Advance the generation other processes poll to notice grants, revocations and new tokens."""
    counters.bump(tx, GENERATION_KEY)


def generation(db: Any) -> int:
    """Return the current auth generation (0 before anything was granted)."""
    return counters.read(db, GENERATION_KEY)


def _audit(tx: Any, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    audit.append_one(tx, actor, action, subject, detail)


def ensure_principal(tx: Any, name: str, kind: str, actor: str) -> None:
    """Insert a principal unless it exists."""
    if not tx.query("SELECT name FROM auth_principals WHERE name = ?", (name,)):
        tx.execute("INSERT INTO auth_principals (name, kind, created_at, created_by) VALUES (?, ?, ?, ?)",
                   (name, kind, time.time(), actor))


def insert_grant(db: Any, name: str, kind: str, role: str, actor: str) -> bool:
    """Grant a role (creating the principal); return False when it was already held."""
    with db.transaction() as tx:
        ensure_principal(tx, name, kind, actor)
        if tx.query("SELECT role FROM auth_roles WHERE principal = ? AND role = ?", (name, role)):
            return False
        tx.execute("INSERT INTO auth_roles (principal, role, granted_at, granted_by) VALUES (?, ?, ?, ?)",
                   (name, role, time.time(), actor))
        _audit(tx, actor, "auth.grant", f"principal:{name}", {"role": role})
        _bump(tx)
    return True


def delete_grant(db: Any, name: str, role: str, actor: str) -> bool:
    """Remove a role grant; return whether one was removed."""
    with db.transaction() as tx:
        gone = tx.execute("DELETE FROM auth_roles WHERE principal = ? AND role = ?", (name, role)).rowcount
        if gone:
            _audit(tx, actor, "auth.revoke_role", f"principal:{name}", {"role": role})
            _bump(tx)
    return bool(gone)


def principal_rows(db: Any) -> list[dict[str, Any]]:
    """Return every principal with its roles (comma-joined, sorted)."""
    rows = db.query("SELECT name, kind, created_at, created_by FROM auth_principals ORDER BY name")
    roles: dict[str, list[str]] = {}
    for r in db.query("SELECT principal, role FROM auth_roles ORDER BY role"):
        roles.setdefault(r["principal"], []).append(r["role"])
    for r in rows:
        r["roles"] = roles.get(r["name"], [])
    return rows


def role_map(db: Any) -> dict[str, frozenset[str]]:
    """Return principal name -> roles for every principal holding one."""
    out: dict[str, set[str]] = {}
    for r in db.query("SELECT principal, role FROM auth_roles"):
        out.setdefault(r["principal"], set()).add(r["role"])
    return {k: frozenset(v) for k, v in out.items()}


def insert_token(db: Any, row: dict[str, Any], kind: str, actor: str) -> None:
    """Store a new token's hash and scopes (never its secret)."""
    with db.transaction() as tx:
        ensure_principal(tx, row["principal"], kind, actor)
        tx.execute("INSERT INTO auth_tokens (id, principal, salt, secret_hash, operations, models, description,"
                   " created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                   (row["id"], row["principal"], row["salt"], row["secret_hash"], _list(row["operations"]),
                    _list(row["models"]), row["description"], row["created_at"], row["expires_at"]))
        _audit(tx, actor, "auth.token_create", f"principal:{row['principal']}",
               {"token": row["id"], "operations": row["operations"], "models": row["models"],
                "expires_at": row["expires_at"]})
        _bump(tx)


def mark_revoked(db: Any, token_id: str, actor: str) -> bool:
    """Revoke a token; return False when no live token has this id."""
    with db.transaction() as tx:
        done = tx.execute("UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                          (time.time(), token_id)).rowcount
        if done:
            _audit(tx, actor, "auth.token_revoke", f"token:{token_id}", {})
            _bump(tx)
    return bool(done)


def token_rows(db: Any, principal: str | None = None) -> list[dict[str, Any]]:
    """Return stored tokens (hashes included), oldest first, optionally of one principal."""
    sql = "SELECT * FROM auth_tokens"
    params: tuple[Any, ...] = ()
    if principal is not None:
        sql += " WHERE principal = ?"
        params = (principal,)
    rows = db.query(sql + " ORDER BY created_at, id", params)
    for r in rows:
        r["operations"] = json.loads(r["operations"]) if r["operations"] is not None else None
        r["models"] = json.loads(r["models"]) if r["models"] is not None else None
    return rows


def _list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def write_access(db: Any, records: Sequence[tuple[float, str, str, str, str]]) -> None:
    """Append access records (at, actor, action, subject, detail JSON) in one transaction."""
    with db.transaction() as tx:
        audit.append(tx, records)


def access_rows(db: Any, actor: str | None = None, action_prefix: str | None = None, since: float = 0.0,
                limit: int = 200, subject: str | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """Return audit records, newest first, filtered by actor, action prefix, subject text and time."""
    sql = "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE at >= ?"
    params: list[Any] = [since]
    if until is not None:
        sql += " AND at < ?"
        params.append(until)
    if subject:
        sql += " AND subject LIKE ? ESCAPE '\\'"
        params.append("%" + subject.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if actor:
        sql += " AND actor = ?"
        params.append(actor)
    if action_prefix:
        sql += " AND substr(action, 1, ?) = ?"
        params += [len(action_prefix), action_prefix]
    rows = db.query(sql + " ORDER BY id DESC LIMIT ?", (*params, int(limit)))
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows


def subject_records(db: Any, subject: str, prefix: str) -> list[dict[str, Any]]:
    """Return the audit records about ``subject`` or any subject starting with ``prefix``, oldest first."""
    rows = db.query("SELECT at, actor, action, subject, detail FROM audit_log"
                    " WHERE subject = ? OR substr(subject, 1, ?) = ? ORDER BY id", (subject, len(prefix), prefix))
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows
