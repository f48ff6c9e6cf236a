"""Compaction of a view's offline files: values kept, readers and writers undisturbed, kill -9 at every step."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from forgeml.errors import ValidationError
from forgeml.features import Aggregation, Entity, FeatureView, PushSource, StreamSource

CARD = Entity("card", join_keys=["card_id"])
DAY0 = datetime(2024, 6, 1, 22, tzinfo=UTC)


def _batch(first: int, n: int, start: datetime = DAY0) -> pa.Table:
    """Rows with unique ids first..first+n-1, spread over two dates (so two partitions)."""
    ids = list(range(first, first + n))
    return pa.table({"id": ids, "card_id": [i % 7 for i in ids], "amount": [float(i % 13) for i in ids],
                     "event_timestamp": [start + timedelta(minutes=(i * 37) % 240) for i in ids]})


def _files(root: Path, table: str = "t") -> list[Path]:
    return sorted((root / table).glob("*/*.parquet"))


def _counts(store, table: str = "t") -> tuple[int, int]:
    got = store.query(f"SELECT count(*) AS n, count(DISTINCT id) AS d FROM {store.table_relation(table)}")
    return got.column("n")[0].as_py(), got.column("d")[0].as_py()


@pytest.fixture
def offline(tmp_path):
    from forgeml.storage.offline import DuckDBOfflineStore

    store = DuckDBOfflineStore(str(tmp_path / "offline"))
    yield store
    store.close()


def test_compaction_keeps_every_row_and_value(offline, tmp_path):
    """60 small files over two dates become one file per date; every row reads back the same."""
    for i in range(60):
        offline.write("t", _batch(i * 10, 10), "event_timestamp")
    # a column added later reads as null before it, as union_by_name does
    offline.write("t", _batch(600, 5).append_column("note", pa.array(["x"] * 5)), "event_timestamp")
    before = offline.read("t", timestamp_field="event_timestamp").sort_by("id")
    assert len(_files(tmp_path / "offline")) == 122
    done = offline.compact("t", grace_s=0)
    assert (done.files_before, done.files_after, done.rows, len(done.partitions)) == (122, 2, 605, 2)
    assert len(_files(tmp_path / "offline")) == 2
    after = offline.read("t", timestamp_field="event_timestamp").sort_by("id")
    assert after.select(before.column_names).equals(before)
    # nothing to do the second time; later writes are compacted with the earlier file
    assert offline.compact("t", grace_s=0).files_after == 2
    offline.write("t", _batch(700, 3), "event_timestamp")
    assert offline.compact("t", grace_s=0).files_after == 2 and _counts(offline) == (608, 608)


def test_readers_and_writers_during_compaction_see_every_row_once(offline, tmp_path):
    """Readers in other threads never see a row twice or miss one; rows pushed meanwhile are all kept."""
    for i in range(150):
        offline.write("t", _batch(i * 4, 4), "event_timestamp")
    written = [600]
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            floor = written[0]
            n, d = _counts(offline)
            seen.append((floor, n, d))

    def write() -> None:
        while not stop.is_set() and written[0] < 1000:
            offline.write("t", _batch(written[0], 4), "event_timestamp")
            written[0] += 4

    threads = [threading.Thread(target=read), threading.Thread(target=read), threading.Thread(target=write)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            offline.compact("t", grace_s=0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert seen, "the readers ran"
    # no duplicate (n == distinct) and nothing written before the read started is missing
    assert all(n == d and n >= floor for floor, n, d in seen), [s for s in seen if not (s[1] == s[2] >= s[0])][:3]
    offline.compact("t", grace_s=0)
    assert _counts(offline) == (written[0], written[0])


KILLER = """
import os, signal, sys
import pyarrow.parquet as pq
from forgeml.storage import parquet_compaction as compaction
from forgeml.storage.offline import DuckDBOfflineStore

root, step = sys.argv[1], sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if step == "writing":  # part of the new file written
    write = pq.ParquetWriter.write_table
    def write_then_die(self, *args, **kwargs):
        write(self, *args, **kwargs)
        die()
    pq.ParquetWriter.write_table = write_then_die
elif step == "renaming":  # new file complete under its .tmp name
    compaction.os.replace = die
elif step == "renamed":  # new file in place, replaced files all still there
    compaction._fsync_dir = die
elif step == "deleting":  # some replaced files deleted
    unlink, calls = os.unlink, []
    def unlink_then_die(path):
        calls.append(path)
        if len(calls) == 3:
            die()
        unlink(path)
    compaction.os.unlink = unlink_then_die
print(compaction.compact(DuckDBOfflineStore(root), "t", row_group_rows=50, grace_s=0))
"""


@pytest.mark.parametrize("step", ["writing", "renaming", "renamed", "deleting", "none"])
def test_a_compaction_killed_at_any_step_loses_and_duplicates_nothing(offline, tmp_path, step):
    """kill -9 of the compacting process (a fresh interpreter) at each step; the next run finishes the job."""
    for i in range(40):
        offline.write("t", _batch(i * 5, 5), "event_timestamp")
    before = offline.read("t", timestamp_field="event_timestamp").sort_by("id")
    run = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "offline"), step], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == (0 if step == "none" else -9), run.stderr
    assert _counts(offline) == (200, 200)
    if step in ("renamed", "deleting"):  # the new file is in place: readers already skip what it replaces
        assert any(p.name.startswith("compact-") for p in _files(tmp_path / "offline"))
    again = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "offline"), "none"], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(_files(tmp_path / "offline")) == 2
    assert not list((tmp_path / "offline" / "t").glob("*/*.tmp"))
    after = offline.read("t", timestamp_field="event_timestamp").sort_by("id")
    assert after.equals(before)


def test_an_erasure_waits_for_the_lock_and_finishes_a_killed_compaction_first(offline, tmp_path):
    """Rewrites of existing files take the table's lock, which first removes what a killed compaction replaced."""
    from forgeml.contracts import Subject

    for i in range(10):
        offline.write("t", _batch(i * 5, 5), "event_timestamp")
    run = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "offline"), "renamed"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == -9
    first = sorted((tmp_path / "offline" / "t").glob("date=*"))[0]
    left = [p for p in first.glob("*.parquet") if not p.name.startswith("compact-")]
    assert left  # replaced files left behind (hidden from readers)
    erased = offline.erase_subject(Subject("card_id", "3"))
    assert sum(h.rows for h in erased) == 7  # ids 3, 10, ..., 45: counted once, in the compacted file
    assert not any(p.exists() for p in left) and _counts(offline) == (43, 43)


def test_remote_roots_refuse_compaction_in_one_line():
    """An object-store root has no lock to take: compaction says so instead of half-working."""
    from forgeml.errors import ValidationError
    from forgeml.storage.offline import DuckDBOfflineStore

    store = DuckDBOfflineStore("memory://compaction-test/offline")
    try:
        store.write("t", _batch(0, 5), "event_timestamp")
        with pytest.raises(ValidationError, match="compaction needs a local offline root") as e:
            store.compact("t")
        assert "\n" not in str(e.value)
        assert _counts(store) == (5, 5)
    finally:
        store.close()


def test_the_compact_command_and_python_api(workspace):
    """`forgeml features compact VIEW` and FeatureStore.compact rewrite a pushed view's files; values unchanged."""
    from click.testing import CliRunner

    from forgeml.cli import cli
    from forgeml.features.service import store_for

    store = store_for(workspace)
    store.apply([FeatureView("pushed", entities=[CARD], source=PushSource("pushed"),
                             aggregations=[Aggregation("count", windows=["1h"]),
                                           Aggregation("sum", "amount", ["1h", "1d"])])])
    now = datetime.now(UTC)
    for i in range(30):
        store.push("pushed", pa.table({"card_id": [i % 3], "amount": [float(i)],
                                       "event_timestamp": [now - timedelta(minutes=30 - i)]}))
    entity = pa.table({"card_id": [0, 1, 2], "event_timestamp": [now] * 3})
    features = ["pushed:count_1h", "pushed:amount_sum_1h", "pushed:amount_sum_1d"]
    before = store.get_historical_features(entity, features)
    runner = CliRunner()
    done = runner.invoke(cli, ["features", "compact", "pushed", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["files_before"] == 30 and result["files_after"] <= 2 and result["rows"] == 30
    after = store.get_historical_features(entity, features)
    assert after.to_pandas().equals(before.to_pandas())
    assert store.compact("pushed")["files_after"] == result["files_after"]
    missing = runner.invoke(cli, ["features", "compact", "nope"])
    assert missing.exit_code != 0 and "unknown feature view 'nope'" in str(missing.exception)
    zero = runner.invoke(cli, ["features", "compact", "pushed", "--min-files", "0"])
    assert zero.exit_code == 2 and "--min-files" in zero.output
    for bad in (0, -3, True, 1.5):
        with pytest.raises(ValidationError, match="min_files must be a whole number of at least 1"):
            store.compact("pushed", bad)


def test_the_stream_process_compacts_as_it_goes(configure):
    """With [features] compact_after_files, the stream process compacts its offline table in the background."""
    from forgeml.features.service import store_for
    from forgeml.features.streaming import run_streams

    ws = configure('[streams.txns]\nplugin = "files"\npath = "events"\n\n[features]\ncompact_after_files = 4\n')
    store = store_for(ws)
    store.apply([FeatureView("txn", entities=[CARD], source=StreamSource("txns"),
                             aggregations=[Aggregation("count", windows=["1h"])])])
    now = datetime.now(UTC)
    rows = pa.table({"card_id": [i % 5 for i in range(100)],
                     "event_timestamp": [now - timedelta(seconds=3000 - i) for i in range(100)]})
    store.publish("txns", rows)
    [status] = run_streams(store, until_idle=True, batch_size=10, poll_timeout_s=0.2)
    assert status.applied == 100
    files = list((Path(store.offline.root) / "txn").glob("*/*.parquet"))
    assert len(files) < 10 and any(f.name.startswith("compact-") for f in files)
    count = store.offline.query(f"SELECT count(*) AS n FROM {store.offline.table_relation('txn')}")
    assert count.column("n")[0].as_py() == 100

