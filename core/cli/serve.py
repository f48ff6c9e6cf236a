"""`forgeml serve`: the model server."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("model_uris", nargs=-1)
@click.option("--host", default=None, help="Address to listen on (default from [serving], 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="TCP port (default from [serving], 8080).")
@click.option("--workers", default=None, metavar="N|auto",
              help="Server processes (default from [serving], 1), or auto: scaled on load per [serving.autoscale].")
@click.option("--no-batching", is_flag=True, help="Run every request as its own predict call.")
@click.option("--access-log", is_flag=True, help="Log every request (method, path, status) to stderr.")
def serve_cmd(model_uris: tuple[str, ...], host: str | None, port: int | None, workers: str | None,
              no_batching: bool, access_log: bool) -> None:
    """Serve models over HTTP: MODEL_URI is name@production, name@alias or name@version.

    With no MODEL_URI, the [serving.endpoints.NAME] tables of plugins.toml say what to serve.
    """
    from forgeml.serving.server import run_server

    if workers is not None and workers != "auto" and not (workers.isdigit() and 1 <= int(workers) <= 64):
        raise click.BadParameter(f"{workers!r} is neither a number of workers from 1 to 64 nor auto",
                                 param_hint="--workers")
    run_server(list(model_uris), host=host, port=port, workers=workers if workers == "auto" else
               (int(workers) if workers else None),
               batching=False if no_batching else None, access_log=access_log,
               announce=lambda line: click.echo(line, err=True))
