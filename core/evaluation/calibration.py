"""Calibration: reliability curve, Brier score and ECE; a calibrator fitted on a holdout, stored per version.

A calibrator (isotonic or Platt) maps a binary classifier's positive-class score to a calibrated
probability. It is stored with the version (its bytes in the artifact store, its row here) together
with the version's decision threshold, and ``load_model`` applies both: ``predict_proba`` returns
calibrated probabilities and ``predict`` the class the threshold decides.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

from forgeml.errors import ValidationError
from forgeml.registry.calibration import save_calibrator

METHODS = ("isotonic", "platt")
def calibration_report(y_true: Any, scores: Any, bins: int = 10) -> dict[str, Any]:
    """Return the reliability curve (mean score vs observed rate per bin), Brier score and ECE."""
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from forgeml.evaluation.metrics import expected_calibration_error

    y, s = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    observed, predicted = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    counts = np.histogram(s, bins=np.linspace(0, 1, bins + 1))[0]
    return {"brier": float(brier_score_loss(y, s)), "ece": expected_calibration_error(y, s, bins),
            "curve": {"predicted": predicted.tolist(), "observed": observed.tolist(),
                      "counts": [int(c) for c in counts if c]}}


# ------------------------------------------------------------------ calibrators
class Calibrator:
    """Maps positive-class scores to calibrated probabilities (isotonic regression or Platt scaling)."""

    def __init__(self, method: str):
        if method not in METHODS:
            from forgeml.errors import unknown_name

            raise unknown_name("calibration method", method, METHODS)
        self.method = method
        self.model: Any = None

    def fit(self, scores: Any, y_true: Any) -> Calibrator:
        """Fit on a holdout's scores and labels."""
        import numpy as np

        s, y = np.asarray(scores, dtype=float), np.asarray(y_true, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValidationError("fitting a calibrator needs both classes in the holdout")
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
        else:
            from sklearn.linear_model import LogisticRegression

            self.model = LogisticRegression(C=1e6).fit(_logit(s)[:, None], y)
        return self

    def __call__(self, scores: Any) -> Any:
        """Return calibrated probabilities for positive-class scores."""
        import numpy as np

        s = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.clip(self.model.predict(s), 0.0, 1.0)
        return self.model.predict_proba(_logit(s)[:, None])[:, 1]


def _logit(s: Any) -> Any:
    import numpy as np

    s = np.clip(s, 1e-6, 1 - 1e-6)
    return np.log(s / (1 - s))


@dataclass
class CalibrationResult:
    """A fitted calibrator's effect on the holdout: Brier score and ECE before and after."""

    model: str
    dataset: str
    method: str
    threshold: float
    before: dict[str, Any]
    after: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)


def fit_calibration(model: str, dataset: Any, target: str, method: str = "isotonic", threshold: float = 0.5,
                    workspace: Any = None) -> CalibrationResult:
    """Fit a calibrator on a holdout for a binary classifier version and store it with its threshold."""
    import joblib

    from forgeml.evaluation.evaluate import load_for_evaluation, load_table, predict
    from forgeml.registry.models import workspace_or_current

    ws = workspace_or_current(workspace)
    if not 0.0 < threshold < 1.0:
        raise ValidationError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    predictor, label, mv = load_for_evaluation(model, ws)
    if mv is None:
        raise ValidationError("calibrate a registered version (name@version), not a bare model object")
    predictor = getattr(predictor, "uncalibrated", predictor)  # refit from the raw scores, not calibrated ones
    table, data_label = load_table(dataset, ws)
    preds = predict(predictor, table, target, "classification")
    if preds.proba is None or preds.proba.ndim != 1:
        raise ValidationError(f"{label} is not a binary classifier with scores; calibration needs one")
    calibrator = Calibrator(method).fit(preds.proba, preds.y_true)
    before = calibration_report(preds.y_true, preds.proba)
    after = calibration_report(preds.y_true, calibrator(preds.proba))
    buf = io.BytesIO()
    joblib.dump(calibrator, buf)
    digest = ws.artifacts.put_bytes(buf.getvalue())
    report = {"before": before, "after": after}
    save_calibrator(ws, mv.name, mv.version, method, digest, threshold, data_label, report)
    return CalibrationResult(mv.uri, data_label, method, threshold, before, after)
