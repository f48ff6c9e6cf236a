"""Copy a workspace's metadata to another metadata store (``forgeml migrate --to postgres URL``), verified.

Every layer's migration set that ran in the source is applied to the target first, so the target
has the same tables whatever database it is; then each table is copied in foreign-key order with
its ids, and each table's row count and an order-independent checksum of its rows are compared.
The source is never written to.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ConfigError, StorageError

# migration set -> "module:attribute" of its migrations; the kernel's own set is applied by the store
LAYER_MIGRATIONS = {
    "tracking": "forgeml.tracking.schema:MIGRATIONS",
    "jobs": "forgeml.jobs.schema:MIGRATIONS",
    "registry": "forgeml.registry.schema:MIGRATIONS",
    "features": "forgeml.features.schema:MIGRATIONS",
    "datasets": "forgeml.datasets.schema:MIGRATIONS",
    "monitoring": "forgeml.monitoring.schema:MIGRATIONS",
    "pipelines": "forgeml.pipelines.schema:MIGRATIONS",
    "auth": "forgeml.auth.store:MIGRATIONS",
    "calibration": "forgeml.registry.schema:CALIBRATION_MIGRATIONS",
}
MIGRATIONS_TABLE = "_forgeml_migrations"
BATCH = 5000


@dataclass
class TableCopy:
    """What was copied of one table and whether both sides agree."""

    table: str
    rows: int
    target_rows: int
    checksum: str
    target_checksum: str

    @property
    def ok(self) -> bool:
        """Whether count and checksum match."""
        return self.rows == self.target_rows and self.checksum == self.target_checksum


@dataclass
class CopyReport:
    """The outcome of a copy: one entry per table, and the migration sets applied to the target."""

    source: str
    target: str
    sets: list[str] = field(default_factory=list)
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every table arrived complete and unchanged."""
        return all(t.ok for t in self.tables)


def _migrations(migration_set: str) -> Any:
    spec = LAYER_MIGRATIONS.get(migration_set)
    if spec is None:
        raise StorageError(f"cannot copy migration set {migration_set!r}: this forgeml does not know its tables; "
                           "upgrade forgeml or enable the plugin that owns it")
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def open_target(workspace: Any, plugin: str, url: str, schema: str | None = None) -> Any:
    """Open a metadata store of another plugin for this workspace, with the given url (and schema)."""
    from forgeml.config import build_settings

    provider = workspace.plugins.provider("metadata_stores", plugin, "forgeml migrate --to")
    if provider.settings is None:
        raise ConfigError(f"metadata store {plugin!r} takes no settings: it cannot be given a url")
    values: dict[str, Any] = {"url": url}
    if schema:
        values["schema"] = schema
    return provider.factory(build_settings(provider.settings, values, f"forgeml migrate --to {plugin}"), workspace)


def _canonical(value: Any, kind: str) -> bytes:
    """One value as bytes that are the same whichever database returned it."""
    if value is None or kind == "float" and isinstance(value, float) and math.isnan(value):
        return b"\x00"
    if kind == "float":
        return repr(float(value)).encode()
    if kind == "int":
        return str(int(value)).encode()
    if kind == "bytes":
        return bytes(value).hex().encode()
    return str(value).encode()


def _kinds(table: Any) -> list[str]:
    import sqlalchemy as sa

    kinds = []
    for column in table.columns:
        t = column.type
        kinds.append("float" if isinstance(t, sa.Float | sa.Numeric) and not isinstance(t, sa.Integer)
                     else "int" if isinstance(t, sa.Integer) else "bytes" if isinstance(t, sa.LargeBinary) else "text")
    return kinds


def _batches(store: Any, table: Any, order: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
    """Read a table in primary-key order, BATCH rows at a time."""
    import sqlalchemy as sa

    query = sa.select(*table.columns)
    if order:
        query = query.order_by(*[table.c[c] for c in order])
    yield from store.stream(query, batch=BATCH)


def checksum(store: Any, table: Any, order: Sequence[str]) -> tuple[int, str]:
    """Return a table's row count and an order-independent checksum of its rows."""
    kinds = _kinds(table)
    total, count = 0, 0
    for rows in _batches(store, table, order):
        for row in rows:
            digest = hashlib.sha256(b"\x1f".join(_canonical(v, k) for v, k in zip(row, kinds))).digest()
            total = (total + int.from_bytes(digest[:16], "big")) % (1 << 128)
            count += 1
    return count, f"{total:032x}"


def copy_metadata(workspace: Any, target: Any, progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy every table of the workspace's metadata store into an empty target store and verify it."""
    import sqlalchemy as sa

    from forgeml.buffering import flush_all

    # records still buffered in this process (access audit, metric points) would land in the source
    # mid-copy and make the verification fail: write them first
    workspace.flush_pending()
    flush_all()
    source = workspace.metadata
    sets = sorted({r[0] for r in source.rows(f"SELECT DISTINCT migration_set FROM {MIGRATIONS_TABLE}")} - {"core"})
    report = CopyReport(source=source.url, target=target.url, sets=sets)
    for name in sets:
        target.migrate(name, _migrations(name))
    meta = sa.MetaData()
    meta.reflect(target.engine)
    source_tables = set(sa.inspect(source.engine).get_table_names())
    tables = [t for t in meta.sorted_tables if t.name != MIGRATIONS_TABLE and t.name in source_tables]
    for table in tables:
        if target.rows(sa.select(sa.func.count()).select_from(table))[0][0]:
            raise StorageError(f"{target.url}: table {table.name} already holds rows; copy into an empty "
                               "database or schema")
    with target.transaction() as tx:
        for table in tables:
            order = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
            names = [c.name for c in table.columns]
            marks = ", ".join("?" for _ in names)
            insert = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
            copied = 0
            for rows in _batches(source, table, order):
                tx.executemany(insert, rows)
                copied += len(rows)
                if progress:
                    progress(table.name, copied)
        target.identities_copied([t.name for t in tables])
    for table in tables:
        order = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
        rows, digest = checksum(source, table, order)
        target_rows, target_digest = checksum(target, table, order)
        report.tables.append(TableCopy(table.name, rows, target_rows, digest, target_digest))
    return report
