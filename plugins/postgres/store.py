"""The PostgreSQL metadata store itself: the shared SQLAlchemy store bound to psycopg 3 and one schema."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from forgeml.errors import ConfigError
from forgeml.storage.migrations import CORE, CORE_MIGRATIONS
from forgeml.storage.relational import SQLMetadataStore, nan_to_null

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def engine_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg 3 for a postgresql:// or postgres:// URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ConfigError(f"[storage.metadata] url must start with postgresql:// (got {url.split(':', 1)[0]}:...)")


class PostgresMetadataStore(SQLMetadataStore):
    """Metadata in one schema of a PostgreSQL database."""

    dialect = "postgresql"
    hint = "is the server running and the url in [storage.metadata] right?"

    def __init__(self, url: str, schema: str = "public", connect_timeout_s: int = 10, lock_timeout_s: float = 60.0):
        if not _SCHEMA.match(schema):
            raise ConfigError(f"[storage.metadata] schema {schema!r} must be lower-case letters, digits and _")
        super().__init__(engine_url(url))
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.lock_timeout_s = lock_timeout_s
        # one lock per schema: workspaces sharing a database do not wait for each other
        self.lock_key = int.from_bytes(hashlib.sha256(f"forgeml:{schema}".encode()).digest()[:8], "big", signed=True)

    def describe(self) -> str:
        """Name the server, database and schema (never the password)."""
        return f"{super().describe()} (schema {self.schema})"

    def create_engine(self) -> sa.Engine:
        """An Engine whose connections use the schema and give up on a held lock after lock_timeout_s."""
        options = f"-c search_path={self.schema} -c lock_timeout={int(self.lock_timeout_s * 1000)}"
        return sa.create_engine(self.url, poolclass=NullPool,
                                connect_args={"connect_timeout": self.connect_timeout_s, "options": options})

    def begin(self, connection: sa.Connection) -> None:
        """BEGIN and wait for this schema's writer lock (released at COMMIT or ROLLBACK)."""
        connection.exec_driver_sql("BEGIN")
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))

    def insert_rows(self, connection: sa.Connection, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> int:
        """Append rows with COPY FROM STDIN (an executemany would pay a round trip per row)."""
        import psycopg

        cursor = connection.connection.dbapi_connection.cursor()
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(nan_to_null(row))
        except psycopg.Error as e:
            raise self.error(sa_exc.DBAPIError.instance(f"COPY {table}", None, e, psycopg.Error)) from e
        finally:
            cursor.close()
        return len(rows)

    def identities_copied(self, tables: Sequence[str]) -> None:
        """Set each serial column's sequence to the column's highest value."""
        with self.transaction() as tx:
            serial = tx.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
                "AND column_default LIKE 'nextval(%'", (self.schema,)).fetchall()
            for table, column in serial:
                if table in tables:
                    tx.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({column}), 0) + 1, false) "
                               f"FROM {table}", (f"{self.schema}.{table}", column))

    def create_schema(self) -> None:
        """Create the schema when it is missing (several processes may race to do it)."""
        try:
            self.connection().exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except sa_exc.IntegrityError:
            return  # another process created it at the same moment
        except sa_exc.SQLAlchemyError as e:
            raise self.error(e) from e


def open_store(url: str, schema: str = "public", connect_timeout_s: int = 10, lock_timeout_s: float = 60.0,
               migrate_core: bool = True) -> PostgresMetadataStore:
    """Open a PostgreSQL metadata store, creating its schema and the kernel's tables when missing."""
    store = PostgresMetadataStore(url, schema, connect_timeout_s, lock_timeout_s)
    store.create_schema()
    if migrate_core:
        store.migrate(CORE, CORE_MIGRATIONS)
    return store
