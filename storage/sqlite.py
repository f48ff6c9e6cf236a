"""The default metadata store: SQLite in WAL mode, safe for many processes writing at once."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forgeml.contracts import Migration, Params
from forgeml.errors import StorageError, ValidationError

from .migrations import CORE, CORE_MIGRATIONS

MIGRATIONS_TABLE = "_forgeml_migrations"


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    if cursor.description is None:
        return []
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


class SQLiteTransaction:
    """A BEGIN IMMEDIATE transaction on one connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement and return its cursor."""
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement for many rows; return the rows affected."""
        return self.conn.executemany(sql, rows).rowcount

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT and return dict rows."""
        return _rows(self.conn.execute(sql, params))


class SQLiteMetadataStore:
    """Metadata in one SQLite file: WAL, busy timeout, foreign keys, one connection per thread."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 30000, migrate_core: bool = True):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._pid = os.getpid()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if migrate_core:
            self.migrate(CORE, CORE_MIGRATIONS)

    # ------------------------------------------------------------ connections
    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it (and dropping one inherited over fork) as needed."""
        if self._pid != os.getpid():
            self._local = threading.local()
            self._all = []
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StorageError(f"{self.path}: cannot switch to WAL mode (got {mode}); is it on a network drive?")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as e:
                raise self._open_error(e) from e
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        """Open a write transaction (BEGIN IMMEDIATE), committed on success and rolled back on error."""
        conn = self.connection()
        if conn.in_transaction:  # nested use joins the outer transaction
            yield SQLiteTransaction(conn)
            return
        try:
            self._begin(conn)
            try:
                yield SQLiteTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"{self.path}: {e}", transient=isinstance(e, sqlite3.OperationalError)) from e
        except OverflowError as e:  # a value, not the database: rolled back above
            raise ValidationError(f"a number is too large to store (the limit is a 64-bit integer): {e}") from e

    def _begin(self, conn: sqlite3.Connection) -> None:
        # busy_timeout does not always cover BEGIN IMMEDIATE under WAL contention; retry until the deadline.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _open_error(self, error: sqlite3.DatabaseError) -> StorageError:
        """Tell a read-only workspace (fix the permissions) apart from a damaged file (restore or move aside)."""
        folder = self.path.parent
        text = str(error).lower()
        read_only = ("readonly" in text or "read-only" in text or not os.access(folder, os.W_OK)
                     or (self.path.exists() and not os.access(self.path, os.W_OK)))
        if read_only:
            return StorageError(f"{self.path}: the workspace is read-only ({error}); forgeml writes its database "
                                "there, so make the folder writable or point FORGEML_HOME at a writable copy")
        return StorageError(f"{self.path}: not a usable SQLite database ({error}); restore it from a backup "
                            "or move it aside to start afresh", transient=False)

    def integrity_problems(self) -> list[str]:
        """Return what SQLite's quick_check finds wrong with the database file (empty when it is sound)."""
        try:
            rows = self.connection().execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as e:
            return [str(e)]
        return [r[0] for r in rows if r[0] != "ok"]

    # ------------------------------------------------------------ statements
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows affected."""
        with self.transaction() as tx:
            return tx.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one write statement for many rows in one transaction."""
        with self.transaction() as tx:
            return tx.executemany(sql, rows)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT and return dict rows."""
        try:
            return _rows(self.connection().execute(sql, params))
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {e}") from e
        except OverflowError as e:
            raise ValidationError(f"a number is too large to look up (the limit is a 64-bit integer): {e}") from e

    # ------------------------------------------------------------ migrations
    def applied_migrations(self, migration_set: str) -> list[int]:
        """Return the numbers of the set's migrations already applied."""
        self._ensure_migrations_table()
        rows = self.query(f"SELECT number FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY number",
                          (migration_set,))
        return [r["number"] for r in rows]

    def _ensure_migrations_table(self) -> None:
        self.connection().execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (migration_set TEXT NOT NULL, number INTEGER NOT NULL,"
            " name TEXT NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (migration_set, number))"
        )

    def migrate(self, migration_set: str, migrations: Sequence[Migration]) -> list[str]:
        """Apply the set's pending migrations in order, each with its record, in one transaction."""
        known = sorted(migrations, key=lambda m: m.number)
        if [m.number for m in known] != list(range(1, len(known) + 1)):
            raise StorageError(f"migration set {migration_set!r} must be numbered 1..N without gaps")
        newest = known[-1].number if known else 0
        try:
            self._ensure_migrations_table()
        except sqlite3.DatabaseError as e:
            raise self._open_error(e) from e
        done = set(self.applied_migrations(migration_set))
        if done and max(done) > newest:
            raise StorageError(
                f"{self.path}: this workspace was written by a newer forgeml ({migration_set} schema "
                f"{max(done)}, this forgeml knows up to {newest}); upgrade forgeml to open it"
            )
        if len(done) == newest:
            return []
        applied: list[str] = []
        with self.transaction() as tx:
            done = {r["number"] for r in tx.query(
                f"SELECT number FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", (migration_set,))}
            for m in known:
                if m.number in done:
                    continue
                if m.sql:
                    for statement in _split_sql(m.sql):
                        tx.execute(statement)
                if m.apply is not None:
                    m.apply(tx)
                tx.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?, ?)",
                           (migration_set, m.number, m.name, time.time()))
                applied.append(m.name)
        return applied

    def close(self) -> None:
        """Close every connection this process opened."""
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    continue
            self._all.clear()
        self._local = threading.local()


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit our transaction)."""
    statements, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        candidate = "\n".join(buf).strip()
        if candidate.endswith(";") and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        statements.append(rest)
    return statements
