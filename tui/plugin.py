"""The terminal UI as a plugin: contributes the `forgeml tui` command; Textual loads only when it runs."""

from __future__ import annotations

import click

from forgeml import hookimpl


@click.command("tui")
def tui_cmd() -> None:
    """Open the terminal UI on this workspace."""
    from forgeml.tui.app import ForgeApp
    from forgeml.workspace import Workspace

    ForgeApp(Workspace.find()).run()


@hookimpl
def forgeml_register_commands(cli):
    """Add `forgeml tui`."""
    cli.add_command(tui_cmd)
