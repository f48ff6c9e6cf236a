"""The terminal UI as a plugin: contributes the `forgeml tui` command; Textual loads only when it runs."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_register_commands(cli):
    """Add `forgeml tui` (click is imported here, not when every process loads its plugins)."""
    import click

    @click.command("tui")
    @click.option("--label-set", help="Open the labelling screen on this label set.")
    @click.option("--annotator", help="Who is labelling (default: your user name).")
    def tui_cmd(label_set: str | None, annotator: str | None) -> None:
        """Open the terminal UI on this workspace."""
        from forgeml.tui.app import ForgeApp
        from forgeml.workspace import Workspace

        ForgeApp(Workspace.find(), label_set=label_set, annotator=annotator).run()

    cli.add_command(tui_cmd)
