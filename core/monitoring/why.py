"""Why did it drift: the change in mean attributions between a reference window and the current one.

With additive attributions the changes per feature add up to the change in the mean explained
output, so an output-drift alert can say which features moved the scores and by how much.
"""

from __future__ import annotations

import logging
from typing import Any

from forgeml.errors import ForgeError

OUTPUT_DRIFT_METRICS = ("score_shift", "prediction_drift")
SAMPLE_ROWS = 1_000

log = logging.getLogger("forgeml.explain")


def attribute_shift(model: Any, reference: Any, current: Any, workspace: Any = None,
                    rows: int = SAMPLE_ROWS, seed: int = 0) -> dict[str, Any]:
    """Return per-feature mean attributions in both windows and their change, largest change first."""
    import numpy as np

    from forgeml.explain.attributions import explainer_for
    from forgeml.registry.background import as_frame
    from forgeml.registry.models import ModelVersion, load_model, workspace_or_current

    ws = workspace_or_current(workspace)
    loaded = load_model(model, workspace=ws) if isinstance(model, str | ModelVersion) else model
    explainer = explainer_for(loaded, ws)
    means = []
    for table in (reference, current):
        frame = as_frame(table, "window")
        if len(frame) > rows:
            frame = frame.sample(n=rows, random_state=seed)
        att = explainer.explain(frame)
        means.append((att.values.mean(axis=0), float(np.mean(att.base_values + att.values.sum(axis=1))), len(frame)))
    (ref, ref_out, ref_n), (cur, cur_out, cur_n) = means
    change = cur - ref
    order = np.argsort(-np.abs(change), kind="stable")
    mv = getattr(loaded, "model_version", None)
    return {"model": getattr(mv, "uri", None), "method": explainer.method, "reference_rows": ref_n,
            "current_rows": cur_n, "output_change": cur_out - ref_out,
            "features": [{"feature": explainer.features[j], "reference_mean": float(ref[j]),
                          "current_mean": float(cur[j]), "change": float(change[j])} for j in order]}


def explain_alert(alert: Any, workspace: Any) -> dict[str, Any] | None:
    """Attribute an output-drift alert's score shift to features and store it in the alert's details."""
    from datetime import datetime

    from forgeml.monitoring.alerts import add_details, rules
    from forgeml.monitoring.metrics import reference_for
    from forgeml.monitoring.sources import read_prediction_log

    if alert.metric not in OUTPUT_DRIFT_METRICS:
        return None
    rule = next((r for r in rules(workspace) if r.name == alert.rule), None)
    start, end = (datetime.fromisoformat(alert.details[k]) for k in ("window_start", "window_end"))
    current = read_prediction_log(alert.subject, start, end, workspace=workspace)
    if rule is not None and rule.reference:
        reference = reference_for(workspace, alert.subject, rule.reference)
    else:  # as score_shift does without a reference: the window just before
        reference = read_prediction_log(alert.subject, start - (end - start), start, workspace=workspace)
    if current.num_rows == 0 or reference.num_rows == 0:
        return None
    why = attribute_shift(f"{alert.subject}@production", reference, current, workspace)
    add_details(alert.id, {"why": why}, workspace)
    return why


def explain_alert_quietly(alert: Any, workspace: Any) -> None:
    """explain_alert for the alert hook: a model that cannot be explained must not stop the alert."""
    try:
        explain_alert(alert, workspace)
    except (ForgeError, KeyError, ValueError) as e:
        log.warning("alert %s (%s): score shift not attributed to features: %s", alert.id, alert.rule, e)
