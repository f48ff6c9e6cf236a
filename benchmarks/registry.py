"""Registry benchmark: single-row predict latency through load_model, next to the raw estimator (and MLflow's
pyfunc when it is installed), plus register and promote times. Prints one JSON line."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import comparison, finish, peer_python, run_peer


def _timed(fn, repeat: int) -> dict[str, float]:
    for _ in range(50):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 4), "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 4)}


def mlflow_pyfunc(model, row_df, tmp: Path, repeat: int) -> dict:
    """MLflow's pyfunc on the same fitted model and row, from an interpreter that has mlflow (or skipped)."""
    import joblib

    python, how = peer_python("mlflow")
    if python is None:
        return {"skipped": how}
    joblib.dump(model, tmp / "model.joblib")
    row_df.to_parquet(tmp / "row.parquet")
    out = run_peer(python, Path(__file__).parent / "peers" / "mlflow_side.py", "pyfunc", str(tmp / "model.joblib"),
                   str(tmp / "row.parquet"), str(repeat))
    return {**out, "ran_in": how}


def main() -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import load_model, promote, register_model
    from forgeml.workspace import Workspace, set_current

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(20)]
    X = pd.DataFrame(rng.normal(size=(5000, 20)), columns=columns)
    y = (X.f0 + X.f1 - X.f2 > 0).astype(int)
    model = LogisticRegression(max_iter=500).fit(X, y)
    row_df = X.iloc[[7]]
    row_dict = row_df.iloc[0].to_dict()
    row_arrow = pa.Table.from_pandas(row_df, preserve_index=False)
    repeat = 2000
    out: dict[str, object] = {"benchmark": "registry", "features": 20, "rows_per_call": 1, "calls": repeat}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        set_current(ws)
        start = time.perf_counter()
        for _ in range(20):
            mv = register_model("bench", model, input_example=X.head(5), workspace=ws)
        out["register_ms"] = round((time.perf_counter() - start) / 20 * 1000, 2)
        start = time.perf_counter()
        for v in range(1, 21):
            promote("bench", v, "production", workspace=ws)
        out["promote_ms"] = round((time.perf_counter() - start) / 20 * 1000, 2)
        start = time.perf_counter()
        loaded = load_model(f"bench@{mv.version}", workspace=ws)
        out["load_ms"] = round((time.perf_counter() - start) * 1000, 2)
        out["raw_sklearn_predict_dataframe"] = _timed(lambda: model.predict(row_df), repeat)
        out["forgeml_predict_dataframe"] = _timed(lambda: loaded.predict(row_df), repeat)
        out["forgeml_predict_arrow"] = _timed(lambda: loaded.predict(row_arrow), repeat)
        out["forgeml_predict_dict"] = _timed(lambda: loaded.predict(row_dict), repeat)
        out["mlflow"] = mlflow_pyfunc(model, row_df, Path(tmp), repeat)
        if "p50_ms" in out["mlflow"]:
            out["comparisons"] = [comparison("single-row predict p50 (loaded model)",
                                             out["forgeml_predict_dataframe"]["p50_ms"], out["mlflow"]["p50_ms"],
                                             "ms", f"mlflow pyfunc {out['mlflow']['version']}")]
        ws.close()
    finish("registry", out)


if __name__ == "__main__":
    main()
