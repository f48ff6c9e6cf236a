"""Offline reads before and after compaction: a pushed window view whose offline table holds many small files.

Each push appends one small Parquet file; this writes ``--files`` of them (``--rows`` rows each, over two
dates), then times a full read of the table and a point-in-time window query (get_historical_features for
``--entity-rows`` rows), compacts the table, and times both again. Prints one JSON line (also run as part
of benchmarks/streaming.py). Times are the best of ``--repeat`` runs, wall and CPU seconds of this process.

    python benchmarks/offline_compaction.py --files 5000 --rows 20 --entity-rows 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish  # noqa: E402


def _best(fn, repeat: int) -> dict:
    """Run fn repeat times; return the best wall and CPU seconds."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"wall_s": round(min(wall), 4), "cpu_s": round(min(cpu), 4)}


def run(files: int = 5000, rows: int = 20, entity_rows: int = 1000, keys: int = 200, repeat: int = 3,
        work: Path | None = None) -> dict:
    """Write many small offline files for a pushed window view, then time reads before and after compaction."""
    from forgeml.features import Aggregation, Entity, FeatureView, PushSource
    from forgeml.features.service import FeatureStore
    from forgeml.workspace import Workspace

    work = work or Path(tempfile.mkdtemp(prefix="forgeml-compaction-"))
    ws = Workspace.init(work / "ws_compaction")
    store = FeatureStore(ws)
    card = Entity("card", join_keys=["card_id"])
    store.apply([card, FeatureView("pushed", entities=[card], source=PushSource("pushed"),
                                   aggregations=[Aggregation("count", windows=["1h", "1d"]),
                                                 Aggregation("sum", "amount", ["1h", "1d"])])])
    rng = np.random.default_rng(5)
    start_us = int(time.time() * 1e6) - 2 * 86_400_000_000
    span = 2 * 86_400_000_000
    started = time.perf_counter()
    for i in range(files):  # what store.push writes offline, one file per call
        ts = start_us + (i * span) // files + rng.integers(0, span // files, rows)
        store.offline.write("pushed", pa.table({
            "card_id": rng.integers(0, keys, rows, dtype=np.int64),
            "event_timestamp": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "amount": np.round(rng.random(rows) * 100, 2)}), "event_timestamp")
    write_s = time.perf_counter() - started
    entity = pa.table({"card_id": rng.integers(0, keys, entity_rows, dtype=np.int64),
                       "event_timestamp": pa.array(start_us + rng.integers(0, span, entity_rows)).cast(
                           pa.timestamp("us", tz="UTC"))})
    refs = [f"pushed:{f}" for f in store.get_feature_view("pushed").feature_names]
    files_before = len(list((Path(store.offline.root) / "pushed").glob("*/*.parquet")))

    def read() -> None:
        assert store.offline.read("pushed", timestamp_field="event_timestamp").num_rows == files * rows

    def pit() -> None:
        assert store.get_historical_features(entity, refs).num_rows == entity_rows

    before = {"read": _best(read, repeat), "pit": _best(pit, repeat)}
    expected = store.get_historical_features(entity, refs)
    done = store.compact("pushed")
    after = {"read": _best(read, repeat), "pit": _best(pit, repeat)}
    same = store.get_historical_features(entity, refs).equals(expected)
    ws.close()
    return {"files_before": files_before, "files_after": done["files_after"], "rows": files * rows,
            "entity_rows": entity_rows, "write_s": round(write_s, 2), "compact_s": done["seconds"],
            "before": before, "after": after,
            "read_speedup": round(before["read"]["wall_s"] / max(after["read"]["wall_s"], 1e-9), 1),
            "pit_speedup": round(before["pit"]["wall_s"] / max(after["pit"]["wall_s"], 1e-9), 1),
            "values_unchanged": bool(same)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=20, help="rows per file")
    parser.add_argument("--entity-rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    finish("offline_compaction", run(args.files, args.rows, args.entity_rows, repeat=args.repeat))


if __name__ == "__main__":
    main()
