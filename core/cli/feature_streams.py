"""`forgeml features stream | backfill | compact | publish | streams`: run and inspect window views' stream processing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table


def _store() -> Any:
    from forgeml.features import store_for

    return store_for()


@click.command("stream")
@click.argument("views", nargs=-1)
@click.option("--batch", default=50_000, show_default=True,
              help="Most records applied and committed per batch (a poll takes what has arrived).")
@click.option("--until-idle", is_flag=True, help="Stop once every stream has nothing more to read.")
@click.option("--no-supervise", is_flag=True, help="Run in this process instead of a restarted child process.")
def stream_cmd(views: tuple[str, ...], batch: int, until_idle: bool, no_supervise: bool) -> None:
    """Consume the streams of window views (default: all) into the online store until stopped."""
    import signal

    from forgeml.features.streaming import run_streams, stream_views, supervise

    store = _store()
    chosen = [v.name for v in stream_views(store, views)]
    if not chosen:
        raise click.ClickException("no view is fed by a stream; declare source=StreamSource(NAME) and apply it")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    click.echo(f"streaming {', '.join(chosen)} (Ctrl-C to stop)", err=True)
    try:
        if no_supervise or until_idle:
            statuses = run_streams(store, chosen, until_idle=until_idle, batch_size=batch,
                                   should_stop=lambda: bool(stopping))
            for s in statuses:
                click.echo(f"{s.view}: applied {s.applied}, duplicates skipped {s.duplicates}, too late {s.late}")
        else:
            code = supervise(store.workspace.root, chosen, batch, lambda: bool(stopping),
                             lambda msg: click.echo(msg, err=True))
            raise SystemExit(code)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@click.command("backfill")
@click.argument("view")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backfill_cmd(view: str, as_json: bool) -> None:
    """Rebuild a window view's online state from its offline events."""
    result = _store().backfill(view)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['view']}: {result['events']} events into {result['entities']} entities")


@click.command("compact")
@click.argument("view")
@click.option("--min-files", default=2, show_default=True, type=click.IntRange(min=1),
              help="Leave a date with fewer small files than this.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compact_cmd(view: str, min_files: int, as_json: bool) -> None:
    """Rewrite a view's small offline files (one per push or stream batch) into one file per date."""
    result = _store().compact(view, min_files)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['table']}: {result['files_before']} files -> {result['files_after']} "
                   f"({result['rows']} rows rewritten in {result['seconds']}s)")


@click.command("publish")
@click.argument("stream")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def publish_cmd(stream: str, path: str) -> None:
    """Append the rows of a Parquet or CSV file to a stream declared in plugins.toml."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(path) if path.lower().endswith(".csv") else pq.read_table(path)
    click.echo(f"{_store().publish(stream, table)} records published to {stream}")


@click.command("streams")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def streams_cmd(as_json: bool) -> None:
    """Show each stream-fed view's processing: events applied, replays skipped, late events, positions."""
    import time

    from forgeml.features.streaming import read_status, stream_views

    store = _store()
    statuses = [read_status(store.workspace, v.name, v.source.name) for v in stream_views(store)]
    if as_json:
        emit_json([asdict(s) for s in statuses])
        return
    print_table([{"view": s.view, "stream": s.stream, "applied": s.applied, "replays skipped": s.duplicates,
                  "too late": s.late, "dead letters": s.dead_letters,
                  "last batch": "-" if not s.updated_at else f"{time.time() - s.updated_at:.0f}s ago"}
                 for s in statuses])


COMMANDS = [stream_cmd, backfill_cmd, compact_cmd, publish_cmd, streams_cmd]
