"""Calibrators stored per model version, and the wrapper ``load_model`` applies with the version's threshold.

Fitting one is evaluation's work (:func:`forgeml.evaluation.calibration.fit_calibration`); the
registry keeps it with the version (its bytes in the artifact store, its row here) and applies it
on load, so ``predict_proba`` returns calibrated probabilities and ``predict`` the class the
threshold decides.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from forgeml.registry import store as persisted
from forgeml.registry.schema import calibration_store


def save_calibrator(ws: Any, name: str, version: int, method: str, digest: str, threshold: float, dataset: str,
                    report: dict[str, Any]) -> None:
    """Store (or replace) a version's calibrator: its artifact digest, threshold, holdout and report."""
    with calibration_store(ws).transaction() as tx:
        persisted.put_calibrator(tx, name, version, method, digest, threshold, dataset, report, time.time())


def calibration_of(name: str, version: int, workspace: Any) -> dict[str, Any] | None:
    """Return a version's stored calibrator row (method, threshold, report), or None."""
    return persisted.calibrator(calibration_store(workspace), name, version)


def remove_calibration(name: str, version: int, workspace: Any) -> bool:
    """Drop a version's calibrator; return whether it had one."""
    with calibration_store(workspace).transaction() as tx:
        return persisted.drop_calibrator(tx, name, version)


class CalibratedModel:
    """A loaded binary classifier whose scores pass through its version's calibrator and threshold."""

    def __init__(self, loaded: Any, calibrator: Callable[[Any], Any], threshold: float):
        self.uncalibrated = loaded
        self.calibrator = calibrator
        self.threshold = threshold
        model = getattr(loaded, "model", loaded)
        self.classes = list(getattr(model, "classes_", [0, 1]))
        self.matrix_columns = getattr(loaded, "matrix_columns", None)

    def __getattr__(self, name: str) -> Any:
        if name == "uncalibrated":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.uncalibrated, name)

    def predict_proba(self, inputs: Any) -> Any:
        """Return calibrated [1 - p, p] per row."""
        import numpy as np

        p = self.calibrator(self.uncalibrated.predict_proba(inputs)[:, 1])
        return np.column_stack([1 - p, p])

    def predict(self, inputs: Any) -> Any:
        """Return the class the version's threshold decides on the calibrated probability."""
        import numpy as np

        p = self.predict_proba(inputs)[:, 1]
        return np.where(p >= self.threshold, self.classes[-1], self.classes[0])


def with_calibration(loaded: Any, model_version: Any, workspace: Any) -> Any:
    """Wrap a loaded model in its version's calibrator and threshold when one is stored."""
    row = calibration_of(model_version.name, model_version.version, workspace)
    if row is None:
        return loaded
    import joblib

    with workspace.artifacts.open(row["artifact_digest"]) as f:
        calibrator = joblib.load(io.BytesIO(f.read()))
    return CalibratedModel(loaded, calibrator, float(row["threshold"]))
