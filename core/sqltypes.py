"""Portable column types for the layers' table declarations.

Imported only inside migration and query functions, never at module level of a service: it loads
sqlalchemy, which ``import forgeml`` must not.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

#: An autoincrementing integer key: BIGINT identity on PostgreSQL, the rowid alias on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_tables(tx: Any, metadata: sa.MetaData) -> None:
    """Create a migration's tables and indexes inside its open transaction."""
    metadata.create_all(tx.connection, checkfirst=False)


def distinct_values(metadata: Any, table: str, column: str) -> set[Any]:
    """Return a column's distinct non-null values; a table this workspace never created gives none."""
    from forgeml.errors import ForgeError

    statement = sa.select(sa.column(column)).select_from(sa.table(table)).where(
        sa.column(column).is_not(None)).distinct()
    try:
        return {row[column] for row in metadata.query(statement)}
    except ForgeError:  # the layer was never used here: its migration never ran
        return set()
