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
