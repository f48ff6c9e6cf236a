"""Running the app under uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from typing import Any

import orjson

from forgeml.errors import ConfigError

log = logging.getLogger("forgeml.serving")


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


def banner(endpoints: list[Any], versions: dict[str, int], host: str, port: int, workers: int,
           access_log: bool, scale: Any = None) -> list[str]:
    """The lines `forgeml serve` prints at start: where it listens, what it serves, where the docs are."""
    url = f"http://{host}:{port}"
    count = (f"autoscaled: {scale.min_workers} to {scale.max_workers} workers" if scale is not None
             else f"{workers} worker{'s' if workers > 1 else ''}")
    lines = [f"forgeml serve: listening on {url} ({count})"]
    for e in endpoints:
        arms = [f"{e.model} (v{versions[e.model]})"]
        for label, uri in (("shadow", e.shadow), ("a/b", e.ab_model), ("canary", e.canary_model),
                           ("backup", e.fallback.model)):
            if uri:
                arms.append(f"{label} {uri} (v{versions[uri]})")
        batching = "batching on" if e.batching.enabled else "batching off"
        lines.append(f"  {e.name}: {', '.join(arms)}, {batching} -> POST {url}/v1/models/{e.name}/predict")
        guard = guards(e.fallback)
        if guard:
            lines.append(f"    {guard}")
    lines.append(f"  docs: {url}/openapi.json   models: {url}/v1/models   health: {url}/readyz   "
                 f"metrics: {url}/metrics")
    lines.append("  requests are logged to stderr" if access_log else "  add --access-log to log each request")
    return lines


def guards(fb: Any) -> str:
    """One banner line naming what answers when the model fails or the endpoint is under pressure."""
    parts = []
    if fb.cache_ttl_s:
        parts.append(f"cached prediction ({fb.cache_ttl_s:g} s)")
    if fb.rule:
        parts.append(f"rule {fb.rule!r}")
    if fb.constant is not None:
        parts.append(f"constant {fb.constant:g}")
    limits = []
    if fb.budget_ms:
        limits.append(f"budget {fb.budget_ms:g} ms")
    if fb.max_queue:
        limits.append(f"queue {fb.max_queue}")
    if fb.shed_latency_ms:
        limits.append(f"shed above {fb.shed_latency_ms:g} ms")
    out = f"fallback: {' -> '.join(parts)}" if parts else ""
    if limits:
        out += ("; " if out else "") + ", ".join(limits)
    return out


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with request lines on stderr beside the rest (stdout stays free for the user)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def run_server(uris: list[str], host: str | None = None, port: int | None = None, workers: int | str | None = None,
               batching: bool | None = None, workspace: Any = None, access_log: bool = False,
               announce: Any = None) -> None:
    """Serve the given model URIs (or the configured endpoints) until interrupted; `announce` gets the banner."""
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
    versions = {}
    for endpoint in endpoints:  # fail now, in one line, rather than serve a model that cannot load
        for uri in filter(None, (endpoint.model, endpoint.shadow, endpoint.ab_model, endpoint.canary_model,
                                     endpoint.fallback.model)):
            versions[uri] = source.version_of(uri)
    options = server_options(settings)
    host = host or settings.host
    port = settings.port if port is None else port
    scale = None
    if workers == "auto" or (workers is None and settings.autoscale.enabled):
        from forgeml.serving.autoscale import policy_from

        scale = policy_from(settings.autoscale)
        workers = scale.min_workers
    workers = int(workers or settings.workers)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    tune_interpreter()
    speed = uvicorn_speedups()
    if announce is not None:
        for line in banner(endpoints, versions, host, port, workers, access_log, scale):
            announce(line)
    # access lines are uvicorn's, logged at info: the level rises from warning only when they are wanted
    common = {"host": host, "port": port, "log_level": "info" if access_log else "warning",
              "access_log": access_log, "log_config": _log_config(), **speed}
    if workers == 1 and scale is None:
        uvicorn.run(build_app(endpoints, options, workspace), **common)
        return
    os.environ["FORGEML_SERVE_SPEC"] = orjson.dumps(app_args_to_spec(endpoints, options)).decode()
    os.environ["FORGEML_HOME"] = str(workspace.root)
    if options.token:
        os.environ[TOKEN_ENV] = options.token
    if scale is not None:
        from forgeml.serving.autoscale import run_autoscaled

        run_autoscaled(scale, common, announce or log.info, workspace, settings.balance)
        return
    from forgeml.serving import balancer

    if settings.balance and balancer.supported():
        config = uvicorn.Config("forgeml.serving.app:app_from_env", factory=True, workers=workers, **common)
        balancer.run_balanced(config, workers)
        return
    uvicorn.run("forgeml.serving.app:app_from_env", factory=True, workers=workers, **common)
