"""Prediction-log writers for monitoring tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any


def write_log(ws: Any, model: str, table: Any) -> Path:
    """Write prediction-log rows in the agreed layout: predictions/model=NAME/date=YYYY-MM-DD/<uuid>.parquet."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    days = pc.strftime(table.column("_ts"), format="%Y-%m-%d")
    path = ws.dot
    for day in sorted(set(days.to_pylist())):
        folder = ws.dot / "predictions" / f"model={model}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(table.filter(pc.equal(days, pa.scalar(day))), path)
    return path


def log_table(start: Any, n: int, seed: int = 0, score_mean: float = 0.5, latency_ms: float = 10.0,
              error_every: int = 0, spacing_s: float = 1.0, feature_shift: float = 0.0) -> Any:
    """Build n prediction-log rows starting at start, one request per row."""
    from datetime import timedelta

    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ts = [start + timedelta(seconds=i * spacing_s) for i in range(n)]
    errors = [("boom" if error_every and i % error_every == 0 else None) for i in range(n)]
    return pa.table({
        "x": rng.normal(feature_shift, 1.0, n),
        "_request_id": [f"r{seed}-{i}" for i in range(n)],
        "_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "_model": ["m"] * n,
        "_version": [1] * n,
        "_arm": ["primary"] * n,
        "_latency_ms": np.full(n, latency_ms),
        "_prediction": rng.normal(score_mean, 0.1, n),
        "_error": pa.array(errors, pa.string()),
    })
