"""``forgeml migrate --to PLUGIN URL``: copy the workspace's metadata to another metadata store, verified."""

from __future__ import annotations

import os

import click

from forgeml.cli.output import emit_json, print_table


@click.command("migrate")
@click.option("--to", "plugin", required=True, help="Metadata store plugin to copy into, e.g. postgres.")
@click.argument("url", required=False)
@click.option("--schema", default=None, help="Schema of the target database to copy into (default: the plugin's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate_cmd(plugin: str, url: str | None, schema: str | None, as_json: bool) -> None:
    """Copy runs, metrics, jobs, models, features, datasets, alerts and audit into an empty store, then verify.

    URL defaults to $FORGEML_PG_URL. The workspace keeps using its current store until you point
    [storage.metadata] at the new one.
    """
    from forgeml.errors import ConfigError, StorageError
    from forgeml.metadata_copy import copy_metadata, open_target
    from forgeml.workspace import Workspace

    url = url or os.environ.get("FORGEML_PG_URL", "")
    if not url:
        raise ConfigError("give the target's URL (postgresql://user:password@host:port/database) or set FORGEML_PG_URL")
    ws = Workspace.find()
    target = open_target(ws, plugin, url, schema)
    try:
        def progress(table: str, rows: int) -> None:
            if not as_json:
                click.echo(f"\r{table}: {rows} rows", nl=False, err=True)

        report = copy_metadata(ws, target, progress)
    finally:
        target.close()
    if not as_json:
        click.echo("", err=True)
    rows = [{"table": t.table, "rows": t.rows, "copied": t.target_rows, "checksum": t.checksum[:12],
             "match": "yes" if t.ok else "NO"} for t in report.tables]
    if as_json:
        emit_json({"ok": report.ok, "sets": report.sets, "tables": rows})
    else:
        print_table(rows, ["table", "rows", "copied", "checksum", "match"], title=f"copied to {plugin}")
    if not report.ok:
        bad = ", ".join(t.table for t in report.tables if not t.ok)
        raise StorageError(f"the copy differs from the source in {bad}; the source is unchanged")
    if not as_json:
        click.echo(f'Verified. To use it, set in plugins.toml:\n[storage.metadata]\nplugin = "{plugin}"\n'
                   'url = { env = "FORGEML_PG_URL" }' + (f'\nschema = "{schema}"' if schema else ""))
