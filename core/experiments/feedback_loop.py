"""Feedback-loop safeguard: warn when a model's training labels come mostly from its own decisions.

A fraud model that blocks a transaction never learns whether it was fraud; a recommender only sees
clicks on what it chose to show. Labels from held-out traffic (no model decided) are free of that
bias. This check joins training rows to the prediction log by request id and measures the share
whose request a model decided; above the limit it fires a monitoring alert through the notifiers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import ValidationError
from forgeml.serving.arms import HOLDOUT


@dataclass
class LabelProvenance:
    """Where a training set's labels came from: requests a model decided, held out, or not in the log."""

    endpoint: str
    rows: int
    model_decided: int
    held_out: int
    unknown: int
    model_share: float
    limit: float
    alert_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the provenance as JSON-able values."""
        return asdict(self)


def label_provenance(training: Any, endpoint: str, limit: float = 0.9, alert: bool = True,
                     workspace: Any = None) -> LabelProvenance:
    """Measure the share of training rows (column _request_id) a model decided; alert above ``limit``."""
    import pandas as pd

    from forgeml.serving import read_prediction_log

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    if not 0 < limit <= 1:
        raise ValidationError(f"the limit is a share in (0, 1], got {limit}")
    frame = training.to_pandas() if hasattr(training, "to_pandas") else pd.DataFrame(training)
    if "_request_id" not in frame:
        raise ValidationError("training rows need a _request_id column naming the served request each "
                              "label came from")
    log = read_prediction_log(endpoint, workspace=workspace).select(["_request_id", "_arm"]).to_pandas()
    arm_of = log.drop_duplicates("_request_id").set_index("_request_id")["_arm"]
    arms = frame["_request_id"].astype(str).map(arm_of)
    held = int((arms == HOLDOUT).sum())
    unknown = int(arms.isna().sum())
    decided = int(len(arms) - held - unknown)
    known = decided + held
    share = decided / known if known else 0.0
    out = LabelProvenance(endpoint, int(len(frame)), decided, held, unknown, share, limit)
    if alert and known and share > limit:
        out.alert_id = _alert(workspace, out)
    return out


def _alert(workspace: Any, p: LabelProvenance) -> int:
    from forgeml.monitoring.alerts import fire
    from forgeml.monitoring.settings import AlertRule

    rule = AlertRule(name=f"feedback_loop:{p.endpoint}", metric="model_decided_label_share", threshold=p.limit,
                     model=p.endpoint, op=">", window="training set")
    alert, _ = fire(workspace, rule, p.model_share, {"held_out": p.held_out, "model_decided": p.model_decided,
                                                      "unknown": p.unknown, "advice": "keep a holdout arm and "
                                                      "train on its labels, or weight rows by 1/propensity"},
                    datetime.now(UTC))
    return int(alert.id)
