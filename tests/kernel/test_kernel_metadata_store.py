"""The SQLite metadata store: many writer processes, workspace upgrades, newer and corrupt databases."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forgeml.contracts import Migration
from forgeml.errors import StorageError
from forgeml.workspace import Workspace

WRITERS = 8
ROWS = 50

WRITER = '''
import sys, time
from pathlib import Path
from forgeml.contracts import Migration
from forgeml.workspace import Workspace

MIGRATIONS = [Migration(1, "m001_events", "CREATE TABLE demo_events (writer INTEGER, seq INTEGER, "
                                         "PRIMARY KEY (writer, seq));")]
writer, rows, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
ws = Workspace.find()
while not go.exists():  # start together, so the writers really contend
    time.sleep(0.005)
store = ws.metadata_for("demo", MIGRATIONS)
for seq in range(rows):
    if seq % 2:
        store.execute("INSERT INTO demo_events VALUES (?, ?)", (writer, seq))
    else:
        with store.transaction() as tx:
            tx.execute("INSERT INTO demo_events VALUES (?, ?)", (writer, seq))
'''


def test_eight_writer_processes_lose_nothing(tmp_path: Path) -> None:
    """Eight separate processes migrate the same set and write at once; every row is counted."""
    root = tmp_path / "ws"
    Workspace.init(root).close()
    go = tmp_path / "go"
    env = {**os.environ, "FORGEML_HOME": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), str(ROWS), str(go)], env=env,
                              stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * WRITERS, errors
    ws = Workspace(root)
    store = ws.metadata
    assert store.applied_migrations("demo") == [1]
    assert store.query("SELECT COUNT(*) AS n FROM demo_events") == [{"n": WRITERS * ROWS}]
    per_writer = store.query("SELECT writer, COUNT(DISTINCT seq) AS n FROM demo_events GROUP BY writer")
    assert per_writer == [{"writer": w, "n": ROWS} for w in range(WRITERS)]
    ws.close()


V1 = [Migration(1, "m001_runs", "CREATE TABLE demo_runs (id TEXT PRIMARY KEY, name TEXT NOT NULL);")]
V2 = [*V1, Migration(2, "m002_runs_status", "ALTER TABLE demo_runs ADD COLUMN status TEXT NOT NULL DEFAULT 'OK';")]


def test_an_older_workspace_is_migrated(tmp_path: Path) -> None:
    """A workspace written by code with one migration is upgraded by code with two, keeping its rows."""
    old = Workspace.init(tmp_path)
    old.metadata_for("demo", V1).execute("INSERT INTO demo_runs (id, name) VALUES ('r1', 'first')")
    old.close()
    new = Workspace(tmp_path)
    store = new.metadata_for("demo", V2)
    assert store.applied_migrations("demo") == [1, 2]
    assert store.query("SELECT id, name, status FROM demo_runs") == [{"id": "r1", "name": "first", "status": "OK"}]
    recorded = store.query("SELECT number, name FROM _forgeml_migrations WHERE migration_set = 'demo'")
    assert recorded == [{"number": 1, "name": "m001_runs"}, {"number": 2, "name": "m002_runs_status"}]
    new.close()


def test_a_newer_workspace_is_refused(tmp_path: Path) -> None:
    """Code that knows fewer migrations than the workspace holds refuses, saying to upgrade forgeml."""
    newer = Workspace.init(tmp_path)
    newer.metadata_for("demo", V2)
    newer.close()
    older = Workspace(tmp_path)
    with pytest.raises(StorageError, match=r"newer forgeml \(demo schema 2, this forgeml knows up to 1\).*upgrade"):
        older.metadata_for("demo", V1)
    older.close()


def test_a_corrupt_database_is_a_storage_error(tmp_path: Path) -> None:
    """A database file that is not SQLite gives a StorageError naming the file and the way out."""
    ws = Workspace.init(tmp_path)
    ws.close()
    db = tmp_path / ".forgeml" / "metadata.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 500)
    with pytest.raises(StorageError) as err:
        Workspace(tmp_path).metadata  # noqa: B018
    assert str(db) in str(err.value) and "not a usable SQLite database" in str(err.value)


def test_doctor_reports_a_corrupt_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doctor marks the metadata store as failing with the StorageError's message.

    The torch check is replaced by a fixed result: importing torch is not what this test is about.
    """
    from forgeml import doctor
    from forgeml.contracts import HealthCheck

    Workspace.init(tmp_path).close()
    (tmp_path / ".forgeml" / "metadata.db").write_bytes(b"garbage" * 1000)
    monkeypatch.delenv("FORGEML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "_torch_check", lambda: [HealthCheck("torch", True, "skipped")])
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["metadata store"].ok is False
    assert "not a usable SQLite database" in checks["metadata store"].detail
    assert checks["artifact store"].ok and checks["workspace"].ok


def test_store_pragmas(tmp_path: Path) -> None:
    """The database runs in WAL mode with foreign keys and a busy timeout."""
    from forgeml.storage.sqlite import SQLiteMetadataStore

    store = SQLiteMetadataStore(tmp_path / "m.db", busy_timeout_ms=12345)
    assert store.rows("PRAGMA journal_mode") == [("wal",)]
    assert store.rows("PRAGMA foreign_keys") == [(1,)]
    assert store.rows("PRAGMA busy_timeout") == [(12345,)]
    store.close()


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    """A row pointing at a missing parent is refused."""
    from forgeml.storage.sqlite import SQLiteMetadataStore

    store = SQLiteMetadataStore(tmp_path / "m.db")
    store.migrate("fk", [Migration(1, "m001", textwrap.dedent("""
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id));
    """))])
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        store.execute("INSERT INTO child VALUES (1, 99)")
    store.close()
