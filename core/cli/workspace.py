"""Workspace commands: init, doctor, plugins list, config."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import click

from forgeml.cli.output import emit_json, print_table


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init_cmd(directory: Path) -> None:
    """Create a workspace: a documented plugins.toml and the .forgeml/ folder."""
    from forgeml.workspace import Workspace

    existed = (directory / "plugins.toml").exists()
    ws = Workspace.init(directory)
    verb = "Reopened" if existed else "Created"
    click.echo(f"{verb} workspace {ws.root}")


@click.group("plugins")
def plugins_group() -> None:
    """Inspect plugins."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_list(as_json: bool) -> None:
    """List every plugin: name, version, origin, hooks, and whether it is enabled."""
    from forgeml.errors import WorkspaceError
    from forgeml.plugin_manager import make_plugin_manager
    from forgeml.workspace import Workspace

    try:
        host = Workspace.find().plugins
    except WorkspaceError:
        host = make_plugin_manager()
    rows = [
        {"name": i.name, "version": i.version, "origin": i.origin,
         "enabled": "yes" if i.enabled else ("error" if i.error else "no"),
         "hooks": ", ".join(h.removeprefix("forgeml_") for h in i.hooks) or i.error}
        for i in host.infos
    ]
    if as_json:
        emit_json(rows)
    else:
        print_table(rows, ["name", "version", "origin", "enabled", "hooks"], title="forgeml plugins")


@click.group("config")
def config_group() -> None:
    """Show and change the configuration."""


@config_group.command("use")
@click.argument("layer")
@click.argument("plugin")
def config_use(layer: str, plugin: str) -> None:
    """Switch LAYER (a section like storage.online, or online_stores) to PLUGIN, with its documented defaults."""
    from forgeml.selection import use_plugin
    from forgeml.workspace import Workspace, find_root

    root = find_root()
    section, missing = use_plugin(root, layer, plugin)
    if missing:
        click.echo(f"[{section}] now uses {plugin}; set {', '.join(missing)} in {root / 'plugins.toml'}")
        return
    Workspace(root).close()  # validates the whole file with the new choice
    click.echo(f"[{section}] now uses {plugin} with its default settings")


@config_group.command("default")
def config_default() -> None:
    """Print the documented default plugins.toml (what `forgeml init` writes)."""
    from forgeml.workspace import default_config_text

    click.echo(default_config_text(), nl=False)


@config_group.command("show")
def config_show() -> None:
    """Validate this workspace's plugins.toml and print the chosen providers."""
    from forgeml.layers import NAMED_SECTIONS, SECTIONS
    from forgeml.workspace import Workspace

    ws = Workspace.find()
    rows = []
    for section in SECTIONS:
        provider, _ = ws.config.provider(section)
        rows.append({"section": section, "plugin": provider.name, "from": provider.plugin})
    for section, layer in NAMED_SECTIONS.items():
        for name, (provider, _) in ws.config.named(layer).items():
            rows.append({"section": f"{section}.{name}", "plugin": provider.name, "from": provider.plugin})
    print_table(rows, title=str(ws.config.path or "defaults"))


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--deep", is_flag=True, help="Read every referenced artifact and verify its hash (slow on a big store).")
def doctor_cmd(as_json: bool, deep: bool) -> None:
    """Check Python, torch and CUDA, GPUs, the workspace and every plugin."""
    from forgeml.doctor import run_checks

    checks = run_checks(deep=deep)
    if as_json:
        emit_json(checks)
    else:
        rows = [{"check": c.name, "ok": "ok" if c.ok else "FAIL", "detail": c.detail} for c in checks]
        print_table(rows, title=f"forgeml doctor (Python {platform.python_version()}, {sys.platform}, pid {os.getpid()})")
    if not all(c.ok for c in checks):
        sys.exit(1)
