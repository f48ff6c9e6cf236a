"""The default metadata store: SQLite in WAL mode through SQLAlchemy, safe for many processes writing at once."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from forgeml.errors import StorageError

from .migrations import CORE, CORE_MIGRATIONS
from .relational import SQLMetadataStore


class SQLiteMetadataStore(SQLMetadataStore):
    """Metadata in one SQLite file: WAL, busy timeout, foreign keys, one connection per thread."""

    dialect = "sqlite"
    keeps_nan = False

    def __init__(self, path: str | Path, busy_timeout_ms: int = 30000, migrate_core: bool = True):
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}")
        self.busy_timeout_ms = busy_timeout_ms
        self._probe: sqlite3.Connection | None = None
        self._probe_pid = 0
        self._probe_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if migrate_core:
            self.migrate(CORE, CORE_MIGRATIONS)

    def describe(self) -> str:
        """Name the database file in error messages."""
        return str(self.path)

    def create_engine(self) -> sa.Engine:
        """An Engine whose every connection is in WAL mode with a busy timeout and foreign keys on."""
        engine = sa.create_engine(
            self.url, poolclass=NullPool,
            connect_args={"timeout": self.busy_timeout_ms / 1000, "isolation_level": None,
                          "check_same_thread": False},
        )
        event.listen(engine, "connect", self._configure)
        return engine

    def _configure(self, dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        try:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            mode = dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            dbapi_connection.execute("PRAGMA synchronous = NORMAL")
            dbapi_connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as e:
            raise self._open_error(e) from e
        if mode.lower() != "wal":
            raise StorageError(f"{self.path}: cannot switch to WAL mode (got {mode}); is it on a network drive?")

    def _open_error(self, error: sqlite3.DatabaseError) -> StorageError:
        """Tell a read-only workspace (fix the permissions) apart from a damaged file (restore or move aside)."""
        text = str(error).lower()
        read_only = ("readonly" in text or "read-only" in text or not os.access(self.path.parent, os.W_OK)
                     or (self.path.exists() and not os.access(self.path, os.W_OK)))
        if read_only:
            return StorageError(f"{self.path}: the workspace is read-only ({error}); forgeml writes its database "
                                "there, so make the folder writable or point FORGEML_HOME at a writable copy")
        return StorageError(f"{self.path}: not a usable SQLite database ({error}); restore it from a backup "
                            "or move it aside to start afresh", transient=False)

    def data_version(self) -> int | None:
        """Return a number that moves whenever any connection, in any process, commits to the file.

        None inside this thread's own write transaction, whose uncommitted writes would not move it.
        """
        if getattr(self._local, "depth", 0):
            return None
        with self._probe_lock:
            # a connection of its own that never writes: SQLite's data_version moves for every commit
            # made through any other connection, this process's pooled ones included
            if self._probe is None or self._probe_pid != os.getpid():
                try:
                    self._probe = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                                  timeout=self.busy_timeout_ms / 1000)
                except sqlite3.Error:
                    return None
                self._probe_pid = os.getpid()
            try:
                return int(self._probe.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._probe = None  # reopened next time; meanwhile callers read what they need
                return None

    def close(self) -> None:
        """Close every connection this process opened, the change probe's too."""
        with self._probe_lock:
            if self._probe is not None and self._probe_pid == os.getpid():
                self._probe.close()
            self._probe = None
        super().close()

    def integrity_problems(self) -> list[str]:
        """Return what SQLite's quick_check finds wrong with the database file (empty when it is sound)."""
        try:
            rows = self.connection().exec_driver_sql("PRAGMA quick_check").fetchall()
        except (sa_exc.SQLAlchemyError, StorageError) as e:
            return [str(e)]
        return [r[0] for r in rows if r[0] != "ok"]

    def connection(self) -> sa.Connection:
        """Return this thread's connection, turning a failure to open the file into a StorageError."""
        try:
            return super().connection()
        except sa_exc.StatementError as e:
            if isinstance(e.orig, StorageError):
                raise e.orig from e
            raise

    def begin(self, connection: sa.Connection) -> None:
        """BEGIN IMMEDIATE, retried until the busy deadline (busy_timeout does not always cover it under WAL)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except sa_exc.OperationalError as e:
                message = str(e.orig)
                if "locked" not in message and "busy" not in message or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
