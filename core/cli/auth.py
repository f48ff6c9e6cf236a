"""`forgeml auth`: principals, roles and API tokens of this workspace."""

from __future__ import annotations

import dataclasses

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


@click.group("auth")
def auth_group() -> None:
    """Principals, roles (viewer, scientist, approver, admin) and API tokens."""


@auth_group.command("whoami")
def whoami_cmd() -> None:
    """Show the local principal (the OS user) and its roles."""
    from forgeml.auth import local_principal

    p = local_principal()
    click.echo(f"{p.name} ({', '.join(sorted(p.roles)) or 'no role'})")


@auth_group.command("grant")
@click.argument("principal")
@click.argument("role")
@click.option("--service", is_flag=True, help="The principal is a service (a pipeline, CI), not a person.")
def grant_cmd(principal: str, role: str, service: bool) -> None:
    """Give PRINCIPAL a ROLE in this workspace (the first grant also makes you admin)."""
    from forgeml.auth import grant

    added = grant(principal, role, kind="service" if service else "user")
    click.echo(f"{principal} {'now holds' if added else 'already held'} {role}")


@auth_group.command("revoke")
@click.argument("principal")
@click.argument("role")
def revoke_cmd(principal: str, role: str) -> None:
    """Take ROLE from PRINCIPAL."""
    from forgeml.auth import revoke_role

    revoke_role(principal, role)
    click.echo(f"{principal} no longer holds {role}")


@auth_group.command("principals")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def principals_cmd(as_json: bool) -> None:
    """List principals and their roles."""
    from forgeml.auth import list_principals

    rows = list_principals()
    if as_json:
        emit_json(rows)
        return
    print_table([{**r, "roles": ", ".join(r["roles"])} for r in rows], ["name", "kind", "roles", "created_by"])


@auth_group.group("token")
def token_group() -> None:
    """Create, list and revoke API tokens."""


@token_group.command("create")
@click.argument("principal", required=False)
@click.option("--role", default=None, help="Also grant the principal this role (admin only).")
@click.option("--op", "operations", multiple=True, help="Scope: an operation the token may perform (repeatable).")
@click.option("--model", "models", multiple=True, help="Scope: a model name or pattern, e.g. fraud* (repeatable).")
@click.option("--expires", default="90d", show_default=True, help="Lifetime such as 12h, 30d; 'never' for none.")
@click.option("--description", default="", help="What the token is for.")
def create_cmd(principal: str | None, role: str | None, operations: tuple[str, ...], models: tuple[str, ...],
               expires: str, description: str) -> None:
    """Create a token for PRINCIPAL (default: you); it is printed once and stored only as a salted hash."""
    from forgeml.auth import create_token
    from forgeml.auth.service import local_name
    from forgeml.jobs.spec import parse_duration

    lifetime = None if expires == "never" else parse_duration(expires, "--expires")
    token, info = create_token(principal or local_name(), operations=list(operations) or None,
                               models=list(models) or None, expires_in_s=lifetime, description=description,
                               role=role)
    click.echo(token)
    click.echo(f"token {info.id} for {info.principal}; store it now, it cannot be shown again", err=True)


@token_group.command("ls")
@click.option("--principal", default=None, help="Only this principal's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(principal: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from forgeml.auth import list_tokens

    rows = [{**dataclasses.asdict(t), "state": t.state} for t in list_tokens(principal)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["scopes"] = "; ".join(filter(None, [",".join(r["operations"] or []), ",".join(r["models"] or [])])) or "-"
        r["expires"] = "never" if r["expires_at"] is None else format_utc(r["expires_at"], seconds=False)
    print_table(rows, ["id", "principal", "state", "scopes", "expires", "description"])


@token_group.command("revoke")
@click.argument("token_id")
def revoke_token_cmd(token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    from forgeml.auth import revoke_token

    info = revoke_token(token_id)
    click.echo(f"revoked token {info.id} of {info.principal}")
