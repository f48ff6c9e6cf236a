"""`forgeml audit`: query the hash-chained access and change log, and verify that nobody edited it."""

from __future__ import annotations

from typing import Any

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


@click.group("audit")
def audit_group() -> None:
    """The audit log: every access and change, hash-chained so edits and deletions are detected."""


@audit_group.command("ls")
@click.option("--actor", help="Only records of this principal.")
@click.option("--action", help="Only actions starting with this, e.g. access.datasets.read or privacy.")
@click.option("--subject", help="Only records about subjects containing this text, e.g. datasets/people.")
@click.option("--since", help="From this ISO time, or an age such as 7d or 12h.")
@click.option("--until", help="Before this ISO time, or an age.")
@click.option("--limit", type=int, default=200, show_default=True, help="Most records shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(actor: str | None, action: str | None, subject: str | None, since: str | None, until: str | None,
           limit: int, as_json: bool) -> None:
    """List audit records, newest first (who read this dataset, what did this principal do last week)."""
    from forgeml.auth.audit import records
    from forgeml.workspace import current

    rows = records(current(), actor, action, subject, since, until, limit)
    if as_json:
        emit_json(rows)
        return
    print_table([{"id": r["id"], "at": format_utc(r["at"]), "actor": r["actor"], "action": r["action"],
                  "subject": r["subject"]} for r in rows], title="audit log")


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify_cmd(as_json: bool) -> None:
    """Recompute the hash chain; fail when a record was edited, removed or inserted outside it."""
    from forgeml.auth.audit import verify_chain
    from forgeml.errors import ForgeError
    from forgeml.workspace import current

    result = verify_chain(current())
    _show(result, as_json)
    if not result.ok:
        raise ForgeError(f"the audit log was tampered with: {result.problems[0]}")


@audit_group.command("rekey")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rekey_cmd(as_json: bool) -> None:
    """Re-sign the whole chain under the first key of FORGEML_AUDIT_KEY (after verifying it as it stands).

    Run it once after setting a key on a workspace whose chain is unkeyed, and after putting a new key
    first in FORGEML_AUDIT_KEY; the old key can be dropped afterwards.
    """
    from forgeml.auth.audit import rekey_chain
    from forgeml.workspace import current

    _show(rekey_chain(current()), as_json)


def _show(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.records} record(s), {result.chained} chained, {result.keyed} keyed"
               + (f", {result.unchained} from before the chain" if result.unchained else ""))
    for line in result.problems + result.warnings:
        click.echo(f"  {line}")
