"""`forgeml audit`: query the hash-chained access and change log, and verify that nobody edited it."""

from __future__ import annotations

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
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{result.records} record(s), {result.chained} chained"
                   + (f", {result.unchained} from before the chain" if result.unchained else ""))
        for problem in result.problems:
            click.echo(f"  {problem}")
    if not result.ok:
        raise ForgeError(f"the audit log was tampered with: {result.problems[0]}")
