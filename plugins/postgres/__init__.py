"""The PostgreSQL metadata store (psycopg 3 through SQLAlchemy): one server shared by many machines.

Select it in plugins.toml::

    [storage.metadata]
    plugin = "postgres"
    url = { env = "FORGEML_PG_URL" }   # postgresql://user:password@host:5432/database
    schema = "team_a"                  # optional: several workspaces can share one database

Write transactions take a transaction-scoped advisory lock keyed by the schema, so writers are
serialised exactly as SQLite's BEGIN IMMEDIATE serialises them: a read-then-write inside
``transaction()`` sees no concurrent change, on either backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, setting


@dataclass
class PostgresSettings:
    """Settings of the PostgreSQL metadata store."""

    url: Secret | str = setting(
        "", 'Server URL postgresql://user:password@host:port/database; give it as { env = "FORGEML_PG_URL" }.')
    schema: str = setting("public", "Schema holding the workspace's tables (created when missing).")
    connect_timeout_s: int = setting(10, "Seconds to wait for the server before failing.")
    lock_timeout_s: float = setting(60.0, "Seconds a writer waits for another writer before failing.")


def _postgres(settings: PostgresSettings, workspace: Any) -> Any:
    from forgeml.errors import ConfigError

    url = settings.url.get() if isinstance(settings.url, Secret) else settings.url
    if not url:
        raise ConfigError('[storage.metadata] plugin "postgres" needs url = { env = "FORGEML_PG_URL" } '
                          "(postgresql://user:password@host:port/database)")
    from .store import open_store

    return open_store(url, settings.schema, settings.connect_timeout_s, settings.lock_timeout_s)


@hookimpl
def forgeml_register_metadata_stores(register):
    """Offer the PostgreSQL metadata store."""
    register("postgres", _postgres, settings=PostgresSettings, description="PostgreSQL server (psycopg 3)")
