"""`forgeml targets`: list compute targets and check that they work."""

from __future__ import annotations

import sys

import click

from forgeml.cli.output import emit_json, print_table


@click.group("targets")
def targets_group() -> None:
    """Compute targets: this machine, SSH hosts, Slurm clusters, Kubernetes."""


@targets_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def targets_ls(as_json: bool) -> None:
    """List the compute targets declared in plugins.toml."""
    from forgeml.jobs.targets import list_targets
    from forgeml.workspace import Workspace

    rows = [{"name": t.name, "plugin": t.plugin, "where": t.where} for t in list_targets(Workspace.find())]
    if as_json:
        emit_json(rows)
    else:
        print_table(rows, ["name", "plugin", "where"], title="compute targets")


@targets_group.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def targets_check(name: str, as_json: bool) -> None:
    """Check a target: connectivity, GPUs and queue state; exit 1 when a check fails."""
    from forgeml.jobs.targets import check_target
    from forgeml.workspace import Workspace

    checks = check_target(Workspace.find(), name)
    if as_json:
        emit_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        print_table([{"check": c.name, "ok": "yes" if c.ok else "NO", "detail": c.detail} for c in checks],
                    ["check", "ok", "detail"], title=f"target {name}")
    if not all(c.ok for c in checks):
        sys.exit(1)
