"""`forgeml forget`: erase data subjects from every store, log and snapshot, or list what would change."""

from __future__ import annotations

from typing import Any

import click
from click_default_group import DefaultGroup

from forgeml.cli.output import emit_json, print_table


@click.command("forget")
@click.argument("subjects", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="List where each subject's data lives; change nothing.")
@click.option("--verify", is_flag=True, help="Search every place again and fail if any row of a subject remains.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forget_cmd(subjects: tuple[str, ...], dry_run: bool, verify: bool, as_json: bool) -> None:
    """Erase each COLUMN=VALUE subject (e.g. user_id=42) from offline, online and vector stores, stream state,
    prediction logs, dataset snapshots and run artifacts; list the models trained on their data."""
    from forgeml.errors import ForgeError
    from forgeml.privacy.forget import forget, verify_forgotten

    reports = verify_forgotten(list(subjects)) if verify else forget(list(subjects), dry_run=dry_run)
    if as_json:
        emit_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            verb = "remains" if verify else "would be erased" if dry_run else "erased"
            head = f"{r.column}={r.value}: {r.rows} row(s) {verb}"
            click.echo(head + (f" (erasure {r.erasure})" if r.erasure else ""))
            if r.holdings:
                print_table([{"place": h.place, "location": h.location, "rows": h.rows} for h in r.holdings])
            if r.models:
                click.echo(f"models trained on this subject's data (retrain them): {', '.join(r.models)}")
    if verify and any(r.holdings for r in reports):
        raise ForgeError("data of a forgotten subject remains; see the places listed above")
    unreachable = sorted({u for r in reports for u in r.unreachable})
    if unreachable:
        raise ForgeError(f"not erased from {len(unreachable)} place(s) that cannot erase a subject: "
                         f"{'; '.join(unreachable)}; remove the data there by hand")


@click.group("gc", cls=DefaultGroup, default="run", default_if_no_args=True)
def gc_group() -> None:
    """Retention: `forgeml gc [--dry-run]` applies [privacy.retention] now; `forgeml gc status` shows the schedule."""


def _dry_run_and_json(what: str) -> Any:
    """The --dry-run (with its help text) and --json options of a command that changes stored data."""
    def wrap(f: Any) -> Any:
        return click.option("--dry-run", is_flag=True, help=what)(
            click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f))
    return wrap


@gc_group.command("run")
@_dry_run_and_json("List what is past its retention limit; remove nothing.")
def gc_cmd(dry_run: bool, as_json: bool) -> None:
    """Apply the [privacy.retention] limits and reclaim artifact objects nothing refers to."""
    from forgeml.privacy.retention import collect_garbage

    report = collect_garbage(dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb}: {len(report.prediction_log_days)} prediction-log day(s), {len(report.runs)} run(s), "
               f"{len(report.archived_model_artifacts)} archived model file set(s), "
               f"{len(report.unreferenced_artifacts)} unreferenced object(s); {report.bytes} bytes")


@gc_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gc_status_cmd(as_json: bool) -> None:
    """Show the retention schedule: the interval, the last run (when, how, what it removed) and the next."""
    from forgeml.privacy.retention import schedule_status
    from forgeml.times import format_utc

    out = schedule_status()
    if as_json:
        emit_json(out)
        return
    last = out["last_run"]
    click.echo(f"every: {out['every_hours']:g} h" if out["every_hours"] else "every: not scheduled")
    click.echo("last run: never" if last is None else
               f"last run: {format_utc(last['at'])} ({last['trigger']}): "
               + (f"failed: {last['error']}" if "error" in last else
                  ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in last["counts"].items())))
    if out["next_run_at"] is not None:
        click.echo(f"next run: {format_utc(out['next_run_at'])}"
                   + (f" (scheduler pid {out['scheduler_pid']})" if out["scheduler_pid"] else ""))
    if out["note"]:
        click.echo(out["note"])


@click.group("encryption")
def encryption_group() -> None:
    """Encryption at rest of artifacts and prediction logs ([privacy] encrypt_at_rest)."""


@encryption_group.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate_cmd(as_json: bool) -> None:
    """Re-encrypt everything under the first key of the keys variable (put the new key first, old ones after)."""
    from forgeml.privacy.keys import reencrypt

    counts = reencrypt()
    if as_json:
        emit_json(counts)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))


@click.group("pseudonyms")
def pseudonyms_group() -> None:
    """PII pseudonyms: rotate the key they are made with (the key chain in [privacy] key_env)."""


@pseudonyms_group.command("rotate")
@_dry_run_and_json("Count the pseudonyms that would move; change nothing.")
def pseudonyms_rotate_cmd(dry_run: bool, as_json: bool) -> None:
    """Move stored pseudonyms under a new key: append it to FORGEML_PII_KEY (OLD,NEW), then run this."""
    from forgeml.privacy.keys import rotate_pseudonyms

    out = rotate_pseudonyms(dry_run=dry_run)
    if as_json:
        emit_json(out)
        return
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} pseudonyms under the chain of {out['keys']} keys: "
               + (", ".join(f"{k} {v}" for k, v in out["changed"].items()) or "none found"))
    click.echo("not rewritten: " + "; ".join(out["not_rewritten"]))
