"""Running the app under uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import orjson

from forgeml.errors import ConfigError


def uvicorn_speedups() -> dict[str, str]:
    """Pick uvloop and httptools when they are installed (several times less overhead per request)."""
    out = {"loop": "asyncio", "http": "h11"}
    if importlib.util.find_spec("uvloop") is not None:
        out["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        out["http"] = "httptools"
    return out


def tune_interpreter() -> None:
    """Set the server process's GIL switch interval for low tail latency."""
    # a 1 ms GIL switch interval (default 5 ms): the event loop gets the GIL back quickly from the
    # predict and log-writer threads, which keeps tail latency down
    sys.setswitchinterval(0.001)


def run_server(uris: list[str], host: str | None = None, port: int | None = None, workers: int | None = None,
               batching: bool | None = None, workspace: Any = None) -> None:
    """Serve the given model URIs (or the configured endpoints) until interrupted."""
    import uvicorn

    from forgeml.serving.app import build_app
    from forgeml.serving.config import (
        TOKEN_ENV,
        app_args_to_spec,
        endpoint_configs,
        server_options,
        serving_settings,
    )
    from forgeml.serving.source import RegistrySource

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    settings = serving_settings(workspace)
    endpoints = endpoint_configs(uris, settings, batching)
    source = RegistrySource(workspace)
    for endpoint in endpoints:  # fail now, in one line, rather than serve a model that cannot load
        for uri in filter(None, (endpoint.model, endpoint.shadow, endpoint.ab_model, endpoint.canary_model)):
            source.version_of(uri)
    options = server_options(settings)
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    tune_interpreter()
    speed = uvicorn_speedups()
    common = {"host": host, "port": port, "log_level": "warning", "access_log": False, **speed}
    if workers == 1:
        uvicorn.run(build_app(endpoints, options, workspace), **common)
        return
    os.environ["FORGEML_SERVE_SPEC"] = orjson.dumps(app_args_to_spec(endpoints, options)).decode()
    os.environ["FORGEML_HOME"] = str(workspace.root)
    if options.token:
        os.environ[TOKEN_ENV] = options.token
    uvicorn.run("forgeml.serving.app:app_from_env", factory=True, workers=workers, **common)
