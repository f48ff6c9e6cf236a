"""`forgeml server`: the platform's HTTP API over this workspace."""

from __future__ import annotations

import click


@click.command("server")
@click.option("--host", default=None, help="Address to listen on (default from [server], 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TCP port (default from [server], 8765).")
@click.option("--self-signed", is_flag=True,
              help="Serve HTTPS with a self-signed certificate kept in .forgeml/server/tls (for local use).")
def server_cmd(host: str | None, port: int | None, self_signed: bool) -> None:
    """Serve the registry, runs, jobs, datasets, features and alerts over HTTP (OpenAPI at /openapi.json).

    Every call needs a bearer token (`forgeml auth token create`); roles and scopes decide what it may do.
    """
    from forgeml.server.run import run_server

    run_server(host=host, port=port, self_signed=self_signed)
