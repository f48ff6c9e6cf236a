"""The dialect-neutral half of a metadata store on SQLAlchemy Core: statements, transactions, migrations.

A concrete store (SQLite here, PostgreSQL in the postgres plugin) says how to build its Engine, how
to begin a serialised write transaction and how to word its errors; everything else is shared.
Portable SQL strings run through ``exec_driver_sql`` after their ``?`` markers are rewritten to the
driver's parameter style once per distinct string, so the metric writer's hot path pays no
per-row SQLAlchemy cost.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from forgeml.contracts import Migration, Params
from forgeml.errors import ConflictError, StorageError, ValidationError

MIGRATIONS_TABLE = "_forgeml_migrations"
_LITERAL = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


def to_driver_sql(sql: str, paramstyle: str) -> str:
    """Rewrite ``?`` markers outside quoted literals into the driver's positional style."""
    if paramstyle == "qmark":
        return sql
    parts = _LITERAL.split(sql)
    out = []
    for i, part in enumerate(parts):
        part = part.replace("%", "%%") if paramstyle in ("format", "pyformat") else part
        if i % 2 == 0:
            part = part.replace("?", "%s" if paramstyle in ("format", "pyformat") else "?")
        out.append(part)
    return "".join(out)


def split_statements(script: str) -> list[str]:
    """Split a migration script at ``;`` outside quoted literals."""
    statements, buf = [], []
    for i, part in enumerate(_LITERAL.split(script)):
        if i % 2:
            buf.append(part)
            continue
        pieces = part.split(";")
        for j, piece in enumerate(pieces):
            buf.append(piece)
            if j < len(pieces) - 1:
                statements.append("".join(buf).strip())
                buf = []
    statements.append("".join(buf).strip())
    return [s for s in statements if s]


def nan_to_null(params: Any) -> Any:
    """Return parameters with NaN floats replaced by None (for databases that would keep NaN)."""
    if isinstance(params, Mapping):
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in params.items()}
    for v in params:
        if v != v:  # only NaN differs from itself: rows without one (nearly all) are passed through as they are
            return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in params)
    return params


class SQLTransaction:
    """One open write transaction on one SQLAlchemy Connection."""

    def __init__(self, store: SQLMetadataStore, connection: sa.Connection):
        self.store = store
        self.connection = connection
        self.dialect = store.dialect

    def execute(self, statement: Any, params: Params = ()) -> Any:
        """Run one statement (portable SQL or a Core expression) and return its CursorResult."""
        return self.store._run(self.connection, statement, params)

    def executemany(self, statement: Any, rows: Sequence[Params]) -> int:
        """Run one statement for many parameter rows; return the rows affected."""
        return self.store._run_many(self.connection, statement, rows)

    def query(self, statement: Any, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT inside the transaction and return rows as dicts."""
        return _dicts(self.execute(statement, params))

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Append many rows to a table the fastest way the database offers; return how many."""
        return self.store.insert_rows(self.connection, table, columns, rows) if rows else 0

    def insert_or_ignore(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows, skipping those that violate a unique key; return how many were inserted."""
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        return self.executemany(sql, rows) if rows else 0

    def upsert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], keys: Sequence[str],
               update: Sequence[str] | None = None, where: str = "") -> int:
        """Insert rows, or on a conflict over ``keys`` overwrite ``update`` (default: the other columns)."""
        if not rows:
            return 0
        update = [c for c in columns if c not in keys] if update is None else list(update)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({', '.join(keys)}) "
        if update:
            sql += "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
            sql += f" WHERE {where}" if where else ""
        else:
            sql += "DO NOTHING"
        return self.executemany(sql, rows)


def _dicts(result: Any) -> list[dict[str, Any]]:
    if not result.returns_rows:
        return []
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result.fetchall()]


class SQLMetadataStore:
    """Metadata on one SQLAlchemy Engine: one connection per thread, explicit serialised write transactions."""

    dialect = ""
    #: Whether the database would store a NaN float as NaN (SQLite stores NULL by itself).
    keeps_nan = True
    #: What an operator is told to check when the database cannot be reached or read.
    hint = ""

    def __init__(self, url: str):
        self.url = url
        self._engine: sa.Engine | None = None
        self._pid = os.getpid()
        self._local = threading.local()
        self._all: list[sa.Connection] = []
        self._inherited: list[Any] = []
        self._lock = threading.Lock()
        self._sql: dict[str, str] = {}
        self._text: dict[str, Any] = {}

    # ------------------------------------------------------------ to be provided by a concrete store
    def create_engine(self) -> sa.Engine:
        """Build this store's Engine (called once per process)."""
        raise StorageError(f"{type(self).__name__} does not say how to connect")

    def begin(self, connection: sa.Connection) -> None:
        """Begin a write transaction serialised against every other writer."""
        connection.exec_driver_sql("BEGIN")

    def describe(self) -> str:
        """Name the database in error messages (never with a password)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # ------------------------------------------------------------ connections
    @property
    def engine(self) -> sa.Engine:
        """The store's SQLAlchemy Engine, rebuilt in a forked child (connections never cross a fork)."""
        self._after_fork()
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self.create_engine()
        return self._engine

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            # keep the parent's connections referenced: finalising them here would close sockets the
            # parent still uses
            self._inherited.extend(self._all)
            if self._engine is not None:
                self._engine.dispose(close=False)
                self._inherited.append(self._engine)
            self._engine = None
            self._all = []
            self._local = threading.local()
            self._lock = threading.Lock()
            self._pid = os.getpid()

    def connection(self) -> sa.Connection:
        """Return this thread's connection (autocommit; write transactions are begun explicitly)."""
        self._after_fork()
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            engine = self.engine
            try:
                conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except sa_exc.SQLAlchemyError as e:
                raise self.error(e) from e
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    def clean(self, params: Any) -> Any:
        """Adapt one row of parameters before it reaches the driver: NaN becomes NULL everywhere."""
        return nan_to_null(params) if self.keeps_nan else params

    def error(self, e: BaseException) -> StorageError:
        """Turn a driver or SQLAlchemy error into a StorageError naming the database."""
        orig = getattr(e, "orig", None) or e
        text = " ".join(str(orig).split())
        kind = ConflictError if isinstance(e, sa_exc.IntegrityError) else StorageError
        hint = f"; {self.hint}" if self.hint and isinstance(e, sa_exc.OperationalError) else ""
        # an operational error (locked, unreachable, full) says nothing against the rows: writers retry them
        return kind(f"{self.describe()}: {text}{hint}", transient=isinstance(e, sa_exc.OperationalError))

    # ------------------------------------------------------------ statements
    def _run(self, conn: sa.Connection, statement: Any, params: Params = ()) -> Any:
        try:
            if isinstance(statement, str):
                if isinstance(params, Mapping):
                    clause = self._text.get(statement)
                    if clause is None:
                        clause = self._text[statement] = sa.text(statement)
                    return conn.execute(clause, self.clean(params))
                if not params:
                    return conn.exec_driver_sql(statement)
                sql = self._sql.get(statement)
                if sql is None:
                    sql = self._sql[statement] = to_driver_sql(statement, conn.dialect.paramstyle)
                return conn.exec_driver_sql(sql, self.clean(params if type(params) is tuple else tuple(params)))
            return conn.execute(statement, self.clean(params) if params else None)
        except sa_exc.SQLAlchemyError as e:
            raise self.error(e) from e
        except OverflowError as e:  # a value, not the database
            raise ValidationError(f"a number is too large to store (the limit is a 64-bit integer): {e}") from e

    def _run_many(self, conn: sa.Connection, statement: Any, rows: Sequence[Params]) -> int:
        if not rows:
            return 0
        try:
            if isinstance(statement, str) and not isinstance(rows[0], Mapping):
                sql = self._sql.get(statement)
                if sql is None:
                    sql = self._sql[statement] = to_driver_sql(statement, conn.dialect.paramstyle)
                if self.keeps_nan:
                    rows = [nan_to_null(r) for r in rows]
                elif type(rows[0]) is not tuple or type(rows) is not list:
                    rows = [tuple(r) for r in rows]
                return conn.exec_driver_sql(sql, rows).rowcount
            if isinstance(statement, str):
                statement = sa.text(statement)
            return conn.execute(statement, [self.clean(r) for r in rows]).rowcount
        except sa_exc.SQLAlchemyError as e:
            raise self.error(e) from e
        except OverflowError as e:  # a value, not the database
            raise ValidationError(f"a number is too large to store (the limit is a 64-bit integer): {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[SQLTransaction]:
        """Open a write transaction, committed on success and rolled back on error; nested use joins it."""
        conn = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield SQLTransaction(self, conn)
            finally:
                self._local.depth -= 1
            return
        try:
            self.begin(conn)
        except sa_exc.SQLAlchemyError as e:
            self._rollback(conn)
            raise self.error(e) from e
        self._local.depth = 1
        try:
            yield SQLTransaction(self, conn)
        except BaseException:
            self._local.depth = 0
            self._rollback(conn)
            raise
        self._local.depth = 0
        try:
            conn.exec_driver_sql("COMMIT")
        except sa_exc.SQLAlchemyError as e:
            self._rollback(conn)
            raise self.error(e) from e

    def _rollback(self, conn: sa.Connection) -> None:
        try:
            conn.exec_driver_sql("ROLLBACK")
        except sa_exc.SQLAlchemyError:
            # nothing was open (BEGIN itself failed) or the connection is gone: drop it
            conn.invalidate()

    def execute(self, statement: Any, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows affected."""
        with self.transaction() as tx:
            return tx.execute(statement, params).rowcount

    def executemany(self, statement: Any, rows: Sequence[Params]) -> int:
        """Run one write statement for many rows in one transaction."""
        with self.transaction() as tx:
            return tx.executemany(statement, rows)

    def query(self, statement: Any, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT and return dict rows."""
        return _dicts(self._run(self.connection(), statement, params))

    def rows(self, statement: Any, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a SELECT and return plain tuples."""
        result = self._run(self.connection(), statement, params)
        return [tuple(r) for r in result.fetchall()] if result.returns_rows else []

    def insert_rows(self, connection: sa.Connection, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> int:
        """Append rows with one executemany (a database with a faster bulk path overrides this)."""
        marks = ", ".join("?" for _ in columns)
        return self._run_many(connection, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def stream(self, statement: Any, params: Params = (), batch: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        """Run a SELECT on a connection of its own and yield its rows ``batch`` at a time."""
        try:
            with self.engine.connect() as conn:
                if isinstance(statement, str):
                    statement = sa.text(statement)
                result = conn.execution_options(yield_per=batch).execute(statement, params or None)
                for part in result.partitions():
                    yield [tuple(r) for r in part]
        except sa_exc.SQLAlchemyError as e:
            raise self.error(e) from e

    def data_version(self) -> int | None:
        """Return a number that moves whenever anyone commits, or None when the database offers no cheap probe."""
        return None

    def identities_copied(self, tables: Sequence[str]) -> None:
        """Move identity counters past the highest ids after rows were copied in with their ids."""

    # ------------------------------------------------------------ migrations
    def _ensure_migrations_table(self, tx: SQLTransaction) -> None:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (migration_set VARCHAR(200) NOT NULL, "
                   "number INTEGER NOT NULL, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL, "
                   "PRIMARY KEY (migration_set, number))")

    def applied_migrations(self, migration_set: str) -> list[int]:
        """Return the numbers of the set's migrations already applied."""
        try:
            rows = self.rows(f"SELECT number FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY number",
                             (migration_set,))
        except StorageError:
            with self.transaction() as tx:
                self._ensure_migrations_table(tx)
            return []
        return [r[0] for r in rows]

    def migrate(self, migration_set: str, migrations: Sequence[Migration]) -> list[str]:
        """Apply the set's pending migrations in order, each with its record, in one transaction."""
        known = sorted(migrations, key=lambda m: m.number)
        if [m.number for m in known] != list(range(1, len(known) + 1)):
            raise StorageError(f"migration set {migration_set!r} must be numbered 1..N without gaps")
        newest = known[-1].number if known else 0
        done = set(self.applied_migrations(migration_set))
        self._refuse_newer(migration_set, done, newest)
        if len(done) == newest:
            return []
        applied: list[str] = []
        with self.transaction() as tx:
            done = {r[0] for r in tx.execute(f"SELECT number FROM {MIGRATIONS_TABLE} WHERE migration_set = ?",
                                             (migration_set,)).fetchall()}
            self._refuse_newer(migration_set, done, newest)
            for m in known:
                if m.number in done:
                    continue
                for statement in split_statements(m.sql):
                    tx.execute(statement)
                if m.apply is not None:
                    try:
                        m.apply(tx)
                    except sa_exc.SQLAlchemyError as e:
                        raise self.error(e) from e
                tx.execute(f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, number, name, applied_at) "
                           "VALUES (?, ?, ?, ?)", (migration_set, m.number, m.name, time.time()))
                applied.append(m.name)
        return applied

    def _refuse_newer(self, migration_set: str, done: set[int], newest: int) -> None:
        if done and max(done) > newest:
            raise StorageError(
                f"{self.describe()}: this workspace was written by a newer forgeml ({migration_set} schema "
                f"{max(done)}, this forgeml knows up to {newest}); upgrade forgeml to open it"
            )

    def close(self) -> None:
        """Close every connection this process opened."""
        self._after_fork()
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sa_exc.SQLAlchemyError:
                    continue
            self._all.clear()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
        self._local = threading.local()
