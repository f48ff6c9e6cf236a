"""`forgeml queue`: every user's GPU jobs on this machine, their share and usage (host-wide leases)."""

from __future__ import annotations

import click

from forgeml.cli.output import emit_json, print_table


@click.command("queue")
@click.option("--host-dir", help="The host folder (default: [scheduler] host_dir, $FORGEML_HOST_DIR or /var/tmp/forgeml-host).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def queue_cmd(host_dir: str | None, as_json: bool) -> None:
    """Show who holds and who waits for this machine's GPUs, with each user's share and usage."""
    from forgeml.jobs.host import host_folder, queue_report
    from forgeml.times import format_utc

    configured = host_dir or ""
    if not configured:
        from forgeml.errors import ForgeError
        from forgeml.workspace import current

        try:
            configured = current().config.section("scheduler").host_dir
        except ForgeError:
            configured = ""  # outside a workspace: the machine's default folder
    report = queue_report(host_folder(configured))
    if as_json:
        emit_json(report)
        return
    print_table(report["users"], ["user", "share", "quota", "gpus_held", "gpus_waiting", "usage_gpu_h"],
                title=f"users (usage decays with a {report['half_life_h']:g} h half-life)")
    running = [{**r, "since": format_utc(r["since"]), "give_back": r["give_back"] or ""} for r in report["running"]]
    print_table(running, ["user", "job", "gpus", "shared", "pid", "since", "give_back", "workspace"], title="running")
    waiting = [{**w, "since": format_utc(w["since"]), "jobs": ", ".join(w["jobs"])} for w in report["waiting"]]
    print_table(waiting, ["user", "gpus", "since", "jobs", "workspace"], title="waiting")
