"""From plugins.toml's [serving] section and command-line URIs to endpoint configurations."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from forgeml.errors import ConfigError
from forgeml.serving.batching import BatchingConfig
from forgeml.serving.endpoint import EndpointConfig
from forgeml.serving.resilience import FallbackConfig
from forgeml.serving.source import parse_uri
from forgeml.serving.state import ServerOptions
from forgeml.serving.traffic import CanaryConfig

TOKEN_ENV = "FORGEML_SERVE_TOKEN"


def serving_settings(workspace: Any) -> Any:
    """Return the workspace's validated [serving] settings."""
    return workspace.config.section("serving")


def resolve_token(settings: Any) -> str | None:
    """Return the bearer token: FORGEML_SERVE_TOKEN wins over plugins.toml's secret; None disables auth."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token
    secret = getattr(settings, "token", None)
    return secret.get() if secret is not None else None


def _endpoint_from(name: str, table: Any, threads: int, max_rows: int, uri: str = "") -> EndpointConfig:
    model = uri or table.model
    if not model:
        raise ConfigError(f"[serving.endpoints.{name}]: 'model' is required (e.g. model = \"{name}@production\")")
    f = table.fallback
    for value in (model, table.shadow, table.ab_model, table.canary.model, f.model):
        if value:
            parse_uri(value)
    b = table.batching
    c = table.canary
    fallback = FallbackConfig(**{k.name: getattr(f, k.name) for k in dataclasses.fields(FallbackConfig)})
    fallback.feature_defaults = dict(f.feature_defaults or {})
    fallback.validate(name)
    return EndpointConfig(
        name=name, model=model, shadow=table.shadow, ab_model=table.ab_model, ab_fraction=table.ab_fraction,
        key_field=table.key_field, canary_model=c.model,
        canary=CanaryConfig(list(c.steps), c.interval_s, c.max_error_rate, c.max_p99_ms, c.min_requests),
        batching=BatchingConfig(b.enabled, b.max_batch_size, b.max_delay_ms, b.inline_max_ms), threads=threads,
        fallback=fallback, max_rows=max_rows if table.max_rows is None else table.max_rows,
    )


def endpoint_configs(uris: Sequence[str], settings: Any, batching: bool | None = None) -> list[EndpointConfig]:
    """Build the endpoints to serve: each URI (named by its model) or, with none, every configured table."""
    tables = dict(settings.endpoints or {})
    threads = settings.predict_threads
    out: list[EndpointConfig] = []
    if uris:
        for uri in uris:
            name, _ = parse_uri(uri)
            table = tables.get(name)
            if table is None:
                out.append(EndpointConfig(name=name, model=uri, threads=threads, max_rows=settings.max_rows))
            else:
                out.append(_endpoint_from(name, table, threads, settings.max_rows, uri))
    else:
        out = [_endpoint_from(name, table, threads, settings.max_rows) for name, table in tables.items()]
    if batching is not None:
        for e in out:
            e.batching = dataclasses.replace(e.batching, enabled=batching)
    return out


def server_options(settings: Any) -> ServerOptions:
    """Build the server-wide options from [serving]."""
    return ServerOptions(token=resolve_token(settings), max_body_bytes=settings.max_body_bytes,
                         principals=settings.principals, rate_per_s=settings.rate_per_s,
                         burst=settings.burst or settings.rate_per_s,
                         poll_interval_s=settings.poll_interval_s, log_predictions=settings.log_predictions,
                         predlog_flush_s=settings.predlog_flush_s,
                         log_explanations=settings.log_explanations,
                         recommend_concurrency=settings.recommend_concurrency,
                         recommend_on_event_loop=settings.recommend_on_event_loop)


def app_args_to_spec(endpoints: Sequence[EndpointConfig], options: ServerOptions) -> dict[str, Any]:
    """Serialise endpoints and options for worker processes (the token stays in the environment)."""
    opts = dataclasses.asdict(options)
    opts.pop("token")
    return {"endpoints": [dataclasses.asdict(e) for e in endpoints], "options": opts}


def spec_to_app_args(spec: dict[str, Any]) -> tuple[list[EndpointConfig], ServerOptions]:
    """Rebuild endpoints and options in a worker process."""
    endpoints = []
    for raw in spec["endpoints"]:
        raw = dict(raw)
        raw["canary"] = CanaryConfig(**raw["canary"])
        raw["batching"] = BatchingConfig(**raw["batching"])
        raw["fallback"] = FallbackConfig(**raw["fallback"])
        endpoints.append(EndpointConfig(**raw))
    options = ServerOptions(**spec["options"])
    options.token = os.environ.get(TOKEN_ENV) or None
    return endpoints, options
