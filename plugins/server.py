"""The platform API: declares the [server] settings section of `forgeml server`."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_register_settings(register):
    """Declare [server]: address, rate limits, body size, TLS and CORS."""
    from forgeml.server.settings import ServerSettings

    register("server", ServerSettings)
