"""Model output monitoring from the prediction log: score distribution, late-label accuracy, latency, errors."""

from __future__ import annotations

from typing import Any

from forgeml.errors import ValidationError
from forgeml.monitoring.sources import parse_window


def _frame(log: Any, needed: tuple[str, ...]) -> Any:
    """Return the prediction log as a DataFrame with the needed columns, or raise naming the missing ones."""
    import pandas as pd

    from forgeml.monitoring.drift import as_table

    table = as_table(log, "prediction log")
    missing = [c for c in needed if c not in table.column_names]
    if missing and table.num_rows:
        raise ValidationError(f"prediction log lacks column(s) {', '.join(missing)}; is it in the agreed layout?")
    if missing:
        return pd.DataFrame({c: [] for c in needed})
    df = table.select(list(needed)).to_pandas()
    df["_ts"] = pd.to_datetime(df["_ts"], utc=True)
    return df


def _bucket(ts: Any, window: str | None) -> Any:
    """Floor timestamps to windows of the given length counted from the Unix epoch (UTC); None: one window."""
    import pandas as pd

    if window is None:
        return pd.Series(ts.min(), index=ts.index) if len(ts) else ts
    step = pd.Timedelta(parse_window(window))
    return ts.dt.floor(step)


def score_windows(log: Any, window: str | None = "1d", reference: Any = None, max_shift_std: float = 2.0) -> Any:
    """Prediction-score distribution per window; ``alert`` marks windows whose mean moved > k reference std.

    ``reference`` is a table or array of reference scores (a table's ``_prediction`` column); without one
    the earliest window is the baseline.
    """
    import numpy as np
    import pandas as pd

    df = _frame(log, ("_ts", "_prediction"))
    df = df[df["_prediction"].notna()]
    cols = ["window_start", "count", "mean", "std", "p05", "p50", "p95", "shift_std", "alert"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["window_start"] = _bucket(df["_ts"], window)
    grouped = df.groupby("window_start")["_prediction"]
    out = grouped.agg(["count", "mean", "std"]).reset_index()
    quantiles = grouped.quantile([0.05, 0.5, 0.95]).unstack()
    out["p05"], out["p50"], out["p95"] = (quantiles[q].to_numpy() for q in (0.05, 0.5, 0.95))
    ref_scores = _reference_scores(reference)
    if ref_scores is None:
        first = df[df["window_start"] == out["window_start"].iloc[0]]["_prediction"].to_numpy()
        ref_scores = first
    ref_mean, ref_std = float(np.mean(ref_scores)), float(np.std(ref_scores))
    shift = (out["mean"] - ref_mean).abs() / ref_std if ref_std > 0 else (out["mean"] - ref_mean).abs() * np.inf
    out["shift_std"] = shift.fillna(0.0)
    out["alert"] = out["shift_std"] > max_shift_std
    out.attrs.update(reference_mean=ref_mean, reference_std=ref_std)
    return out[cols]


def _reference_scores(reference: Any) -> Any:
    import numpy as np

    if reference is None:
        return None
    if isinstance(reference, np.ndarray | list | tuple):
        return np.asarray(reference, dtype=np.float64)
    from forgeml.monitoring.drift import as_table

    table = as_table(reference, "reference")
    if "_prediction" not in table.column_names:
        raise ValidationError("the reference has no _prediction column to compare scores with")
    values = table.column("_prediction").drop_null().to_numpy()
    if len(values) == 0:
        raise ValidationError("the reference has no prediction scores")
    return values.astype(np.float64)


def labelled_metrics(log: Any, labels: Any, window: str | None = "1d", task: str = "auto", threshold: float = 0.5) -> Any:
    """Join late labels to predictions by request id; per window: labelled rows, coverage, accuracy or MAE/RMSE."""
    import numpy as np

    from forgeml.monitoring.drift import as_table

    df = _frame(log, ("_ts", "_request_id", "_prediction"))
    lab = as_table(labels, "labels").to_pandas()
    if "_request_id" not in lab or "label" not in lab:
        raise ValidationError("labels need columns _request_id and label")
    # the latest label given for a request wins
    lab = lab.drop_duplicates("_request_id", keep="last")[["_request_id", "label"]]
    df["window_start"] = _bucket(df["_ts"], window)
    joined = df.merge(lab, on="_request_id", how="left")
    totals = joined.groupby("window_start").size().rename("predictions")
    hit = joined[joined["label"].notna() & joined["_prediction"].notna()].copy()
    cols = ["window_start", "predictions", "labelled", "coverage", "accuracy", "mae", "rmse"]
    if hit.empty:
        out = totals.reset_index()
        out["labelled"], out["coverage"] = 0, 0.0
        out["accuracy"] = out["mae"] = out["rmse"] = np.nan
        return out.reindex(columns=cols)
    y = hit["label"].astype(np.float64).to_numpy()
    p = hit["_prediction"].astype(np.float64).to_numpy()
    if task == "auto":
        task = "classification" if np.all(np.mod(y, 1) == 0) else "regression"
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be auto, classification or regression, got {task!r}")
    if task == "classification":
        binary = set(np.unique(y)) <= {0.0, 1.0} and np.all((p >= 0) & (p <= 1))
        predicted = (p >= threshold).astype(np.float64) if binary else np.round(p)
        hit["correct"] = predicted == y
    hit["abs_err"] = np.abs(p - y)
    hit["sq_err"] = (p - y) ** 2
    agg = {"labelled": ("abs_err", "size"), "mae": ("abs_err", "mean"), "mse": ("sq_err", "mean")}
    if task == "classification":
        agg["accuracy"] = ("correct", "mean")
    out = hit.groupby("window_start").agg(**agg)
    out = totals.to_frame().join(out, how="left").reset_index()
    out["labelled"] = out["labelled"].fillna(0).astype(int)
    out["coverage"] = out["labelled"] / out["predictions"]
    out["rmse"] = np.sqrt(out.pop("mse"))
    if "accuracy" not in out:
        out["accuracy"] = np.nan
    return out.reindex(columns=cols)


def service_metrics(log: Any, window: str | None = "1h") -> Any:
    """Per window: requests, rows, latency p50/p95/p99 (ms, per request) and error rate."""
    import pandas as pd

    df = _frame(log, ("_ts", "_request_id", "_latency_ms", "_error"))
    cols = ["window_start", "requests", "rows", "latency_p50", "latency_p95", "latency_p99", "error_rate"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    # a batch request logs one row per predicted row with the same latency and error
    per_request = df.groupby("_request_id").agg(
        _ts=("_ts", "min"), latency=("_latency_ms", "max"), rows=("_ts", "size"),
        failed=("_error", lambda s: s.notna().any()),
    )
    per_request["window_start"] = _bucket(per_request["_ts"], window)
    g = per_request.groupby("window_start")
    out = g.agg(requests=("latency", "size"), rows=("rows", "sum"), error_rate=("failed", "mean"))
    q = g["latency"].quantile([0.5, 0.95, 0.99]).unstack()
    out["latency_p50"], out["latency_p95"], out["latency_p99"] = q[0.5], q[0.95], q[0.99]
    return out.reset_index().reindex(columns=cols)


def summary(log: Any) -> dict[str, float | None]:
    """Whole-log service figures: requests, latency percentiles and error rate (None when empty)."""
    import numpy as np

    df = _frame(log, ("_ts", "_request_id", "_latency_ms", "_error"))
    if df.empty:
        return {"requests": 0, "latency_p50": None, "latency_p95": None, "latency_p99": None, "error_rate": None}
    per_request = df.groupby("_request_id").agg(latency=("_latency_ms", "max"),
                                                failed=("_error", lambda s: s.notna().any()))
    lat = per_request["latency"].dropna().to_numpy()
    p50, p95, p99 = (np.percentile(lat, [50, 95, 99]) if len(lat) else (np.nan,) * 3)
    return {"requests": int(len(per_request)), "latency_p50": float(p50), "latency_p95": float(p95),
            "latency_p99": float(p99), "error_rate": float(per_request["failed"].mean())}
