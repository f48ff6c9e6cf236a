"""Calibrators stored per model version, and the wrapper ``load_model`` applies with the version's threshold.

Fitting one is evaluation's work (:func:`forgeml.evaluation.calibration.fit_calibration`); the
registry keeps it with the version (its bytes in the artifact store, its row here) and applies it
on load, so ``predict_proba`` returns calibrated probabilities and ``predict`` the class the
threshold decides.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

from forgeml.contracts import Migration

MIGRATION_SET = "calibration"


def _m001_calibrators(tx: Any) -> None:
    """Create the calibrators table."""
    import sqlalchemy as sa

    from forgeml.sqltypes import create_tables

    metadata = sa.MetaData()
    sa.Table(
        "calibrators", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("artifact_digest", sa.Text, nullable=False),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    create_tables(tx, metadata)


MIGRATIONS = [Migration(1, "m001_calibrators", apply=_m001_calibrators)]


def _store(ws: Any) -> Any:
    return ws.metadata_for(MIGRATION_SET, MIGRATIONS)


def save_calibrator(ws: Any, name: str, version: int, method: str, digest: str, threshold: float, dataset: str,
                    report: dict[str, Any]) -> None:
    """Store (or replace) a version's calibrator: its artifact digest, threshold, holdout and report."""
    with _store(ws).transaction() as tx:
        tx.execute("INSERT INTO calibrators (name, version, method, artifact_digest, threshold, dataset, report, at)"
                   " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (name, version) DO UPDATE SET method = excluded.method,"
                   " artifact_digest = excluded.artifact_digest, threshold = excluded.threshold,"
                   " dataset = excluded.dataset, report = excluded.report, at = excluded.at",
                   (name, version, method, digest, threshold, dataset, json.dumps(report), time.time()))


def calibration_of(name: str, version: int, workspace: Any) -> dict[str, Any] | None:
    """Return a version's stored calibrator row (method, threshold, report), or None."""
    rows = _store(workspace).query("SELECT method, artifact_digest, threshold, dataset, report, at FROM calibrators"
                                   " WHERE name = ? AND version = ?", (name, version))
    if not rows:
        return None
    row = dict(rows[0])
    row["report"] = json.loads(row["report"])
    return row


def remove_calibration(name: str, version: int, workspace: Any) -> bool:
    """Drop a version's calibrator; return whether it had one."""
    with _store(workspace).transaction() as tx:
        return tx.execute("DELETE FROM calibrators WHERE name = ? AND version = ?", (name, version)).rowcount > 0


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
