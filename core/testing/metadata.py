"""Conformance suite for metadata stores (contract: :class:`forgeml.contracts.MetadataStore`)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from forgeml.contracts import MetadataStore, Migration
from forgeml.errors import StorageError

SET = "conformance"
M1 = Migration(
    1,
    "m001_items",
    """
    CREATE TABLE conformance_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        writer INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        UNIQUE (writer, seq)
    );
    """,
)
M2 = Migration(2, "m002_items_score", "ALTER TABLE conformance_items ADD COLUMN score REAL;")
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


class MetadataStoreSuite:
    """Tests every metadata store must pass; subclass it and define a ``store`` fixture.

    The store must be empty and usable from child processes started with ``fork`` (the
    multi-process test writes through copies of the same object, as forked workers do).
    """

    @pytest.fixture
    def store(self) -> MetadataStore:
        """The store under test: override in the subclass."""
        pytest.fail("define a `store` fixture returning a fresh, empty metadata store", pytrace=False)

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
