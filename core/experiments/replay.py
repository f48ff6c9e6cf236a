"""Replay: run a candidate model on recorded production requests, with the features as they were served.

The prediction log holds every request's inputs after the online lookup, so the candidate sees exactly
what production saw. Its predictions are turned into the logged form the way serving does, compared
with what production answered and, where outcomes are known, scored against them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.serving.traffic import SHADOW


@dataclass
class ReplayReport:
    """How a candidate would have answered the recorded traffic, beside production."""

    candidate: str
    endpoint: str
    requests: int
    rows: int
    exact_match: float
    decision_agreement: float
    mean_abs_diff: float
    max_abs_diff: float
    seconds: float
    labelled: int = 0
    production_metric: float | None = None
    candidate_metric: float | None = None
    metric: str = ""
    by_version: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-able values."""
        return asdict(self)


def logged_values(outputs: Any) -> Any:
    """Model outputs as the prediction log stores them: a number, a binary class's probability, or a class index."""
    import numpy as np

    arr = np.asarray(outputs)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        if arr.dtype.kind not in "biuf":
            return np.full(len(arr), np.nan)
        return arr[:, -1].astype(np.float64) if arr.shape[1] == 2 else np.argmax(arr, axis=1).astype(np.float64)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return np.full(len(arr), np.nan)


def _predict(served: Any, table: Any, names: list[str]) -> Any:
    """Run the model over a chunk of logged inputs through serving's own predict path."""
    import numpy as np

    from forgeml.serving.slot import model_output, one_per_row, run_model, takes_matrix

    types = {c.name: c.json_type for c in served.signature.inputs}
    if names and all(types.get(n) == "number" for n in names):
        matrix = np.column_stack([table[n].to_numpy(zero_copy_only=False).astype(np.float64) for n in names])
        if takes_matrix(served, names):
            return one_per_row(served, model_output(served, matrix), table.num_rows)
        columns: dict[str, Any] = {n: matrix[:, i] for i, n in enumerate(names)}
    else:
        columns = {n: table[n].to_pylist() for n in names}
    return one_per_row(served, run_model(served, columns), table.num_rows)


def replay(candidate: str, endpoint: str, start: Any = None, end: Any = None, arms: list[str] | None = None,
           outcome: str | None = None, chunk_rows: int = 250_000, workspace: Any = None) -> ReplayReport:
    """Replay an endpoint's logged requests in [start, end) through a candidate model URI and compare."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.serving import read_prediction_log
    from forgeml.serving.source import RegistrySource

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    started = time.perf_counter()
    log = read_prediction_log(endpoint, start=start, end=end, workspace=workspace)
    if log.num_rows == 0:
        raise ValidationError(f"the prediction log of {endpoint!r} has no requests in that time range; "
                              "serve traffic with log_predictions on first")
    answered = pc.and_(pc.is_null(log["_error"]), pc.is_valid(log["_prediction"]))
    keep = pc.invert(pc.is_in(log["_arm"], pa.array([SHADOW])))  # a shadow's answers reached nobody
    if arms:
        keep = pc.is_in(log["_arm"], pa.array(arms))
    log = log.filter(pc.and_(answered, keep))
    if log.num_rows == 0:
        raise ValidationError(f"no answered requests of {endpoint!r} on arm(s) {', '.join(arms or ['any'])}")
    served = RegistrySource(workspace).load(candidate)
    names = served.signature.names or [c for c in log.column_names if not c.startswith("_")]
    missing = [n for n in names if n not in log.column_names]
    if missing:
        raise ValidationError(f"candidate {candidate} takes {', '.join(missing)}, which the log of {endpoint!r} "
                              "does not hold; replay needs a candidate over the served features")
    parts = [logged_values(_predict(served, log.slice(i, chunk_rows), names))
             for i in range(0, log.num_rows, chunk_rows)]
    cand = np.concatenate(parts)
    prod = log["_prediction"].to_numpy(zero_copy_only=False).astype(np.float64)
    diff = np.abs(cand - prod)
    both = ~np.isnan(diff)
    prob = (prod >= 0) & (prod <= 1) & (cand >= 0) & (cand <= 1)
    decided = np.where(prob, (cand >= 0.5) == (prod >= 0.5), np.round(cand) == np.round(prod))
    report = ReplayReport(
        candidate=f"{served.name}@{served.version}", endpoint=endpoint,
        requests=len(set(log["_request_id"].to_pylist())), rows=log.num_rows,
        exact_match=float(np.mean(cand == prod)), decision_agreement=float(np.mean(decided)),
        mean_abs_diff=float(diff[both].mean()) if both.any() else math.nan,
        max_abs_diff=float(diff[both].max()) if both.any() else math.nan, seconds=0.0,
        by_version={str(k): int(v) for k, v in zip(*np.unique(log["_version"].to_numpy(), return_counts=True),
                                                   strict=True)})
    if outcome:
        _score(report, log, prod, cand, outcome, workspace)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _score(report: ReplayReport, log: Any, prod: Any, cand: Any, outcome: str, workspace: Any) -> None:
    """Score both models against the known outcomes (accuracy for labels in {0, 1}, else mean absolute error)."""
    import numpy as np

    from forgeml.feedback.outcomes import read_outcomes

    labels = read_outcomes([outcome], workspace=workspace).drop_duplicates("request_id", keep="last")
    truth = labels.set_index("request_id")["value"]
    y = log["_request_id"].to_pandas().map(truth).to_numpy(dtype=np.float64)
    has = ~np.isnan(y)
    report.labelled = int(has.sum())
    if not has.any():
        return
    y, p, c = y[has], prod[has], cand[has]
    if set(np.unique(y)) <= {0.0, 1.0}:
        report.metric = "accuracy"
        report.production_metric = float(np.mean((p >= 0.5) == (y == 1)))
        report.candidate_metric = float(np.mean((c >= 0.5) == (y == 1)))
    else:
        report.metric = "mae"
        report.production_metric = float(np.mean(np.abs(p - y)))
        report.candidate_metric = float(np.mean(np.abs(c - y)))
