"""Conformance suite for metadata stores (contract: :class:`forgeml.contracts.MetadataStore`)."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from forgeml.contracts import MetadataStore, Migration
from forgeml.errors import ConflictError, ForgeError, StorageError

SET = "conformance"


def _m001_items(tx: Any) -> None:
    """Create the suite's tables the way layers do: SQLAlchemy Table declarations, portable types."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "conformance_items", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("writer", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("writer", "seq"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "conformance_values", metadata,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("i", sa.BigInteger),
        sa.Column("f", sa.Double),
        sa.Column("t", sa.Text),
        sa.Column("b", sa.LargeBinary),
    )
    create_tables(tx, metadata)


M1 = Migration(1, "m001_items", apply=_m001_items)
M2 = Migration(2, "m002_items_score", "ALTER TABLE conformance_items ADD COLUMN score DOUBLE PRECISION;")
WRITERS = 8
ROWS_PER_WRITER = 40


def _write_rows(store: Any, writer: int, rows: int, errors: Any) -> None:
    """Child process body: write rows one transaction at a time, then a batch with executemany."""
    try:
        half = rows // 2
        for seq in range(half):
            with store.transaction() as tx:
                tx.execute("INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)",
                           (writer, seq, f"w{writer}"))
        store.executemany(
            "INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)",
            [(writer, seq, f"w{writer}") for seq in range(half, rows)],
        )
    except BaseException as e:  # reported to the parent, which fails the test with it
        errors.put(f"writer {writer}: {type(e).__name__}: {e}")
        raise


def _write_from_another_process(reopen: Callable[[], MetadataStore], tz: str, errors: Any) -> None:
    """Child process body: open the database afresh under another local time zone and write rows."""
    try:
        os.environ["TZ"] = tz
        time.tzset()
        other = reopen()
        other.migrate(SET, [M1, M2])
        noon = datetime(2024, 3, 31, 12, 0, 0, 123456, tzinfo=UTC).timestamp()
        other.execute("INSERT INTO conformance_items (writer, seq, label, score) VALUES (?, ?, ?, ?)",
                      (99, 1, "child", noon))
        other.close()
    except BaseException as e:  # reported to the parent, which fails the test with it
        errors.put(f"{type(e).__name__}: {e}")
        raise


class MetadataValueSuite:
    """Values, visibility and durability; mixed into MetadataStoreSuite."""

    def test_rows_survive_a_reopen(self, items: MetadataStore, reopen: Callable[[], MetadataStore]) -> None:
        """Rows committed and the migration record are there when the database is opened again."""
        items.execute("INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)", (1, 1, "kept"))
        items.close()
        again = reopen()
        try:
            assert again.applied_migrations(SET) == [1, 2], "migrations recorded before the reopen"
            assert again.migrate(SET, [M1, M2]) == [], "nothing to migrate again after a reopen"
            assert again.query("SELECT label FROM conformance_items") == [{"label": "kept"}]
        finally:
            again.close()

    def test_another_process_writes_are_visible(self, items: MetadataStore,
                                                reopen: Callable[[], MetadataStore]) -> None:
        """A row written by another process (another local time zone) is read at once, its UTC time intact."""
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 0}]  # connection now open
        ctx = multiprocessing.get_context("fork")
        errors = ctx.Queue()
        child = ctx.Process(target=_write_from_another_process, args=(reopen, "Asia/Kolkata", errors))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0, errors.get(timeout=1) if not errors.empty() else f"exit {child.exitcode}"
        rows = items.query("SELECT label, score FROM conformance_items WHERE writer = ?", (99,))
        assert [r["label"] for r in rows] == ["child"], f"expected the child's row, got {rows}"
        when = datetime.fromtimestamp(rows[0]["score"], UTC)
        assert when == datetime(2024, 3, 31, 12, 0, 0, 123456, tzinfo=UTC), f"time came back as {when}"

    def test_values_round_trip_with_their_types(self, items: MetadataStore) -> None:
        """Big integers, float precision, unicode text and bytes come back equal and with their Python types."""
        now = time.time()
        values = {"big": (2**62 + 1, now, "naïve ☃ text", b"\x00\xffbytes"),
                  "small": (-(2**31) - 7, 1e-300, "", b"")}
        for name, (i, f, t, b) in values.items():
            items.execute("INSERT INTO conformance_values (name, i, f, t, b) VALUES (?, ?, ?, ?, ?)", (name, i, f, t, b))
        got = {r["name"]: r for r in items.query("SELECT name, i, f, t, b FROM conformance_values")}
        for name, (i, f, t, b) in values.items():
            row = got[name]
            assert type(row["i"]) is int and row["i"] == i, f"integer {i} came back as {row['i']!r}"
            assert type(row["f"]) is float and row["f"] == f, f"float {f!r} came back as {row['f']!r}"
            assert row["t"] == t, f"text {t!r} came back as {row['t']!r}"
            assert bytes(row["b"]) == b, f"bytes {b!r} came back as {row['b']!r}"

    def test_nan_and_null_are_stored_as_null(self, items: MetadataStore) -> None:
        """A NaN float and None are both read back as None (every store agrees on how NaN is kept)."""
        items.executemany("INSERT INTO conformance_values (name, f) VALUES (?, ?)", [("nan", math.nan), ("none", None)])
        items.execute("INSERT INTO conformance_values (name, f) VALUES (:n, :f)", {"n": "named", "f": math.nan})
        rows = items.query("SELECT name, f FROM conformance_values ORDER BY name")
        assert rows == [{"name": "named", "f": None}, {"name": "nan", "f": None}, {"name": "none", "f": None}]

    def test_unique_violation_is_a_conflict_error(self, items: MetadataStore) -> None:
        """A duplicate key raises ConflictError (a StorageError, a ForgeError), not the driver's exception."""
        items.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        with pytest.raises(ConflictError) as err:
            items.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        assert isinstance(err.value, ForgeError) and "\n" not in str(err.value), str(err.value)

    def test_insert_returning_and_helpers(self, items: MetadataStore) -> None:
        """RETURNING gives the new id; insert_or_ignore skips duplicates; upsert overwrites only when told."""
        with items.transaction() as tx:
            first = tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (?, ?) RETURNING id", (1, 1)).scalar()
            second = tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (?, ?) RETURNING id", (1, 2)).scalar()
            assert isinstance(first, int) and second > first, (first, second)
            assert tx.insert_or_ignore("conformance_items", ("writer", "seq", "label"),
                                       [(1, 1, "dup"), (2, 1, "new")]) >= 1
            tx.upsert("conformance_values", ("name", "i"), [("k", 1)], keys=("name",))
            tx.upsert("conformance_values", ("name", "i"), [("k", 2)], keys=("name",), where="excluded.i > 5")
            tx.upsert("conformance_values", ("name", "i"), [("k", 3)], keys=("name",))
        assert items.query("SELECT label FROM conformance_items ORDER BY writer, seq") == [
            {"label": ""}, {"label": ""}, {"label": "new"}]
        assert items.query("SELECT i FROM conformance_values WHERE name = 'k'") == [{"i": 3}]

    def test_a_core_expression_runs_like_sql(self, items: MetadataStore) -> None:
        """SQLAlchemy Core statements run through execute and query as portable SQL strings do."""
        import sqlalchemy as sa

        table = sa.table("conformance_items", sa.column("writer"), sa.column("seq"), sa.column("label"))
        items.execute(sa.insert(table), {"writer": 5, "seq": 1, "label": "core"})
        rows = items.query(sa.select(table.c.label).where(table.c.writer == 5))
        assert rows == [{"label": "core"}], f"expected the row inserted with a Core expression, got {rows}"
        assert items.execute(sa.update(table).where(table.c.writer == 5).values(label="moved")) == 1
        assert items.dialect == items.engine.dialect.name, (items.dialect, items.engine.dialect.name)


class MetadataStoreSuite(MetadataValueSuite):
    """Tests every metadata store must pass; subclass it and define a ``store`` fixture.

    The store must be empty and usable from child processes started with ``fork`` (the
    multi-process test writes through copies of the same object, as forked workers do). A
    ``reopen`` fixture returns a callable that opens a second, independent store object on the
    same database (as another process or a restarted one would).
    """

    @pytest.fixture
    def store(self) -> MetadataStore:
        """The store under test: override in the subclass."""
        pytest.fail("define a `store` fixture returning a fresh, empty metadata store", pytrace=False)

    @pytest.fixture
    def reopen(self) -> Callable[[], MetadataStore]:
        """A callable opening another store object on the same database: override in the subclass."""
        pytest.fail("define a `reopen` fixture returning a callable that opens the same database again",
                    pytrace=False)

    @pytest.fixture
    def items(self, store: MetadataStore) -> MetadataStore:
        """The store with the suite's table created through its migrations."""
        store.migrate(SET, [M1, M2])
        return store

    # ------------------------------------------------------------ contract shape
    def test_satisfies_the_protocol(self, store: MetadataStore) -> None:
        """The store has every method of the MetadataStore contract and a url."""
        assert isinstance(store, MetadataStore)
        assert isinstance(store.url, str) and store.url

    # ------------------------------------------------------------ migrations
    def test_migrations_apply_once_and_are_recorded(self, store: MetadataStore) -> None:
        """Migrating twice applies each step once and records its number."""
        assert store.applied_migrations(SET) == []
        assert store.migrate(SET, [M1, M2]) == ["m001_items", "m002_items_score"]
        assert store.migrate(SET, [M1, M2]) == []
        assert store.applied_migrations(SET) == [1, 2]
        store.execute("INSERT INTO conformance_items (writer, seq, score) VALUES (1, 1, 0.5)")
        assert store.query("SELECT score FROM conformance_items") == [{"score": 0.5}]

    def test_an_older_schema_is_upgraded(self, store: MetadataStore) -> None:
        """A database at migration 1 gets only migration 2 when the code knows two, keeping its rows."""
        assert store.migrate(SET, [M1]) == ["m001_items"]
        store.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        assert store.migrate(SET, [M1, M2]) == ["m002_items_score"]
        assert store.query("SELECT writer, seq, score FROM conformance_items") == [
            {"writer": 1, "seq": 1, "score": None}
        ]

    def test_a_newer_schema_is_refused(self, store: MetadataStore) -> None:
        """Code that knows fewer migrations than the database holds refuses with a StorageError."""
        store.migrate(SET, [M1, M2])
        with pytest.raises(StorageError, match="newer"):
            store.migrate(SET, [M1])
        assert store.applied_migrations(SET) == [1, 2]

    def test_migration_sets_are_numbered_independently(self, store: MetadataStore) -> None:
        """Two sets each start at 1 and neither sees the other's records."""
        other = [Migration(1, "m001_other", "CREATE TABLE conformance_other (x INTEGER);")]
        store.migrate(SET, [M1])
        assert store.migrate("conformance_b", other) == ["m001_other"]
        assert store.applied_migrations(SET) == [1]
        assert store.applied_migrations("conformance_b") == [1]

    def test_a_failing_migration_leaves_nothing_behind(self, store: MetadataStore) -> None:
        """A migration with a bad statement raises StorageError and applies none of its steps."""
        store.migrate(SET, [M1])
        bad = Migration(
            2, "m002_broken",
            "CREATE TABLE conformance_half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);",
        )
        with pytest.raises(StorageError):
            store.migrate(SET, [M1, bad])
        assert store.applied_migrations(SET) == [1]
        with pytest.raises(StorageError):
            store.query("SELECT * FROM conformance_half")

    def test_migrations_must_be_numbered_without_gaps(self, store: MetadataStore) -> None:
        """A set numbered 1, 3 is rejected before anything runs."""
        gap = Migration(3, "m003_gap", "CREATE TABLE conformance_gap (x INTEGER);")
        with pytest.raises(StorageError):
            store.migrate(SET, [M1, gap])
        assert store.applied_migrations(SET) == []

    # ------------------------------------------------------------ statements
    def test_execute_query_and_executemany(self, items: MetadataStore) -> None:
        """execute and executemany return rows affected; query returns dicts keyed by column."""
        assert items.execute("INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)",
                             (1, 1, "a")) == 1
        rows = [(2, i, "b") for i in range(5)]
        assert items.executemany("INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)",
                                 rows) == 5
        got = items.query("SELECT writer, seq, label FROM conformance_items WHERE writer = :w ORDER BY seq",
                          {"w": 2})
        assert got == [{"writer": 2, "seq": i, "label": "b"} for i in range(5)]
        assert items.execute("UPDATE conformance_items SET label = ? WHERE writer = ?", ("c", 2)) == 5
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items WHERE label = 'c'") == [{"n": 5}]

    def test_parameters_are_never_interpolated(self, items: MetadataStore) -> None:
        """A value that looks like SQL is stored verbatim."""
        nasty = "x'); DROP TABLE conformance_items; --"
        items.execute("INSERT INTO conformance_items (writer, seq, label) VALUES (?, ?, ?)", (1, 1, nasty))
        assert items.query("SELECT label FROM conformance_items") == [{"label": nasty}]

    def test_sql_errors_are_storage_errors(self, items: MetadataStore) -> None:
        """A bad statement raises StorageError, not the driver's own exception."""
        with pytest.raises(StorageError):
            items.query("SELECT * FROM conformance_missing")
        with pytest.raises(StorageError):
            items.execute("INSERT INTO conformance_items (writer) VALUES (1)")  # seq is NOT NULL

    def test_constraint_violation_keeps_earlier_rows(self, items: MetadataStore) -> None:
        """A duplicate key fails the statement but does not lose the rows already committed."""
        items.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        with pytest.raises(StorageError):
            items.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 1}]

    # ------------------------------------------------------------ transactions
    def test_transaction_commits_together(self, items: MetadataStore) -> None:
        """Statements in one transaction are all visible after it ends; tx.query sees its own writes."""
        with items.transaction() as tx:
            tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
            tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 2)")
            assert tx.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 2}]
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 2}]

    def test_transaction_rolls_back_on_error(self, items: MetadataStore) -> None:
        """An exception inside a transaction undoes its writes and propagates unchanged."""
        items.execute("INSERT INTO conformance_items (writer, seq) VALUES (0, 0)")

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            with items.transaction() as tx:
                tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
                tx.executemany("INSERT INTO conformance_items (writer, seq) VALUES (?, ?)", [(2, 1), (2, 2)])
                raise Boom
        assert items.query("SELECT writer FROM conformance_items") == [{"writer": 0}]

    def test_nested_transaction_joins_the_outer_one(self, items: MetadataStore) -> None:
        """A transaction opened inside another commits or rolls back with the outer one."""
        with pytest.raises(RuntimeError):
            with items.transaction() as outer:
                outer.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
                with items.transaction() as inner:
                    inner.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 2)")
                raise RuntimeError("undo both")
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 0}]

    def test_a_failed_statement_rolls_back_its_transaction(self, items: MetadataStore) -> None:
        """A constraint violation inside a transaction raises StorageError and undoes the earlier writes."""
        with pytest.raises(StorageError):
            with items.transaction() as tx:
                tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
                tx.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")
        assert items.query("SELECT COUNT(*) AS n FROM conformance_items") == [{"n": 0}]
        items.execute("INSERT INTO conformance_items (writer, seq) VALUES (1, 1)")  # still usable

    # ------------------------------------------------------------ many processes
    def test_concurrent_writer_processes_lose_nothing(self, items: MetadataStore) -> None:
        """Eight forked processes write at once; every row arrives exactly once."""
        ctx = multiprocessing.get_context("fork")
        errors = ctx.Queue()
        procs = [ctx.Process(target=_write_rows, args=(items, w, ROWS_PER_WRITER, errors))
                 for w in range(WRITERS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        failures = [errors.get(timeout=1) for _ in range(errors.qsize())] if not errors.empty() else []
        assert not failures, failures
        assert [p.exitcode for p in procs] == [0] * WRITERS
        rows = items.query("SELECT writer, COUNT(*) AS n, COUNT(DISTINCT seq) AS d FROM conformance_items "
                           "GROUP BY writer ORDER BY writer")
        assert rows == [{"writer": w, "n": ROWS_PER_WRITER, "d": ROWS_PER_WRITER} for w in range(WRITERS)]

