"""Feast's side of the feature-store benchmark, run by an interpreter that has feast (local provider).

Usage (called by benchmarks/features.py, one JSON line out):
  python feast_side.py pit FEATURES.parquet ENTITY.parquet WORK TTL_DAYS
  python feast_side.py online FEATURES.parquet IDS.json WORK
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

FEATURES = ("f1", "f2", "f3")


def _store(path: Path, work: Path, ttl_days: int):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    repo = work / "feast_repo"
    repo.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(project="bench", registry=str(repo / "registry.db"), provider="local",
                        offline_store={"type": "file"},
                        online_store={"type": "sqlite", "path": str(repo / "online.db")},
                        entity_key_serialization_version=3)
    store = FeatureStore(config=config, repo_path=str(repo))
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(name="stats", entities=[user], ttl=timedelta(days=ttl_days),
                       schema=[Field(name=f, dtype=Float64) for f in FEATURES],
                       source=FileSource(path=str(path), timestamp_field="event_timestamp"))
    store.apply([user, view])
    return store


def pit(path: Path, entity_path: Path, work: Path, ttl_days: int) -> dict:
    """get_historical_features to a DataFrame: the first call (cold), then the best of two more (warm)."""
    import feast
    import pandas as pd

    store = _store(path, work, ttl_days)
    entity_df = pd.read_parquet(entity_path)
    refs = [f"stats:{f}" for f in FEATURES]
    times, rows = [], 0
    for _ in range(3):
        started = time.perf_counter()
        out = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        times.append(time.perf_counter() - started)
        rows = len(out)
    return {"version": feast.__version__, "cold_s": round(times[0], 3), "warm_s": round(min(times[1:]), 3),
            "rows_returned": rows, "entity_rows": len(entity_df)}


def online(path: Path, ids_path: Path, work: Path) -> dict:
    """Materialize the rows into Feast's SQLite online store, then one-entity reads of 3 features."""
    import feast

    store = _store(path, work, 3650)
    started = time.perf_counter()
    store.materialize(start_date=datetime(2000, 1, 1, tzinfo=UTC), end_date=datetime.now(UTC))
    materialize_s = time.perf_counter() - started
    ids = json.loads(ids_path.read_text())
    refs = [f"stats:{f}" for f in FEATURES]
    for i in ids[:200]:  # warm caches, as the forgeml side does
        store.get_online_features(features=refs, entity_rows=[{"user_id": i}]).to_dict()
    lat = []
    for i in ids:
        started = time.perf_counter()
        out = store.get_online_features(features=refs, entity_rows=[{"user_id": i}]).to_dict()
        lat.append((time.perf_counter() - started) * 1000)
    assert out["f1"][0] is not None
    lat.sort()
    return {"version": feast.__version__, "materialize_s": round(materialize_s, 3),
            "online_p50_ms": round(lat[len(lat) // 2], 4), "online_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 4),
            "online_calls": len(lat)}


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "pit":
        print(json.dumps(pit(Path(args[0]), Path(args[1]), Path(args[2]), int(args[3]))))
    else:
        print(json.dumps(online(Path(args[0]), Path(args[1]), Path(args[2]))))
