"""A workspace holding two people's data in every place, and a search of every file for a value."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SUBJECT = "subj-90417-kx"
OTHER = "keep-55123-qz"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def populate(workspace: Any, tmp_path: Path) -> dict[str, Any]:
    """Write the subject's and another person's rows into every store; return the refs made."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    import forgeml
    from forgeml.datasets import register_dataset
    from forgeml.features import Embedding, Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.serving.predlog import PredictionLogger, log_root

    csv = tmp_path / "scored.csv"  # logged before user_id is tagged PII (afterwards it is refused)
    csv.write_text(f"user_id,score\n{SUBJECT},0.2\n{OTHER},0.7\n")
    with forgeml.start_run(workspace=workspace) as run:
        run.log_artifact(csv)
    user = Entity("user", join_keys=("user_id",), dtype="string", pii=True)
    view = FeatureView("profile", entities=[user], source=PushSource("profile"),
                       features=[Feature("email", "string", pii=True), Feature("age", "float64"),
                                 Feature("emb", Embedding(4))])
    store = FeatureStore(workspace)
    store.apply([user, view])
    ids = [SUBJECT, OTHER, SUBJECT, "third-1"]
    store.push("profile", pd.DataFrame({
        "user_id": ids, "event_timestamp": [T0 + timedelta(hours=i) for i in range(4)],
        "email": [f"{u}@example.org" for u in ids], "age": [31.0, 40.0, 32.0, 50.0],
        "emb": [[0.1 * i, 0.2, 0.3, 0.4] for i in range(4)]}))
    logger = PredictionLogger(log_root(workspace))
    logger.log("churn", 1, "primary", "r1", T0, 2.0, {"user_id": [SUBJECT, OTHER], "age": [31.0, 40.0]},
               [0.2, 0.7], 2)
    logger.log("churn", 1, "primary", "r2", T0 + timedelta(days=1), 2.0, {"user_id": [OTHER], "age": [40.0]},
               [0.6], 1)
    logger.flush()
    source = tmp_path / "people.parquet"
    pq.write_table(pa.table({"user_id": ids, "age": [31, 40, 32, 50]}), source)
    dv = register_dataset("people", str(source), pii=["user_id"], workspace=workspace)
    with forgeml.start_run(run_id=run.id, workspace=workspace) as again:
        again.log_input(dataset=dv.ref)
    return {"dataset": dv.ref, "run": run.id}


def places_holding(root: Path, value: str) -> list[str]:
    """Return every file under root whose bytes, or whose decoded tables, contain value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    needle = value.encode()
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if needle in data:
            hits.append(str(path.relative_to(root)))
            continue
        if data[:4] == b"PAR1":
            try:
                text = str(pq.read_table(pa.BufferReader(data)).to_pylist())
            except pa.ArrowException:
                continue
            if value in text:
                hits.append(str(path.relative_to(root)) + " (decoded)")
        elif data[:16] == b"SQLite format 3\x00":
            with sqlite3.connect(path) as conn:
                if any(value in line for line in conn.iterdump()):
                    hits.append(str(path.relative_to(root)) + " (sql)")
    return hits
