"""`forgeml plugin new`: start a plugin package of your own."""

from __future__ import annotations

from pathlib import Path

import click

from forgeml.plugin_template import KINDS


@click.group("plugin")
def plugin_group() -> None:
    """Write plugins of your own."""


@plugin_group.command("new")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("name")
@click.option("--dir", "dest", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to create the package in.")
def plugin_new(kind: str, name: str, dest: Path) -> None:
    """Write a ready package for a KIND plugin called NAME, with a test running its conformance suite."""
    from forgeml.plugin_template import new_plugin

    root = new_plugin(kind, name, dest)
    click.echo(f"wrote {root}; next: cd {root} && pip install -e .[test] && pytest")
