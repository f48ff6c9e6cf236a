"""Output monitoring from the prediction log: score windows, late-label accuracy, latency and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from monitoring_helpers import log_table, write_log

from forgeml.errors import ValidationError
from forgeml.monitoring import labelled_metrics, log_labels, read_labels, read_prediction_log, score_windows
from forgeml.monitoring.output import service_metrics

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def test_score_windows_alert_when_the_mean_moves_more_than_two_reference_std():
    calm = log_table(DAY, 500, seed=1, score_mean=0.5, spacing_s=60)
    moved = log_table(DAY + timedelta(days=1), 500, seed=2, score_mean=0.75, spacing_s=60)
    near = log_table(DAY + timedelta(days=2), 500, seed=3, score_mean=0.6, spacing_s=60)
    log = pa.concat_tables([calm, moved, near])
    out = score_windows(log, "1d")
    assert len(out) == 3
    assert list(out["alert"]) == [False, True, False]  # +0.25 is 2.5 std of 0.1; +0.1 is 1 std
    assert out["shift_std"].iloc[1] == pytest.approx(2.5, abs=0.3)
    assert out["p50"].iloc[1] == pytest.approx(0.75, abs=0.02)
    explicit = score_windows(log, "1d", reference=np.random.default_rng(0).normal(0.75, 0.1, 1000))
    assert list(explicit["alert"]) == [True, False, False]


def test_late_labels_join_by_request_id(workspace):
    log = log_table(DAY, 10, seed=7, spacing_s=3600)
    log = log.set_column(log.schema.get_field_index("_prediction"), "_prediction",
                         pa.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.4, 0.3, 0.95, 0.05]))
    ids = log.column("_request_id").to_pylist()
    # labels arrive for six of the ten requests; two of them are wrong, and one label is corrected later
    log_labels("m", pa.table({"_request_id": ids[:6], "label": [1, 1, 0, 1, 1, 0]}), workspace=workspace)
    log_labels("m", pa.table({"_request_id": [ids[3]], "label": [0]}), workspace=workspace)
    out = labelled_metrics(log, read_labels("m", workspace), window=None)
    row = out.iloc[0]
    assert row["predictions"] == 10 and row["labelled"] == 6
    assert row["coverage"] == pytest.approx(0.6)
    assert row["accuracy"] == pytest.approx(5 / 6)  # request 4 (p=0.7, label 1) right; request 6 (p=0.6) wrong
    regression = labelled_metrics(log, pa.table({"_request_id": ids[:2], "label": [1.5, 0.3]}), None)
    assert regression.iloc[0]["mae"] == pytest.approx((0.6 + 0.5) / 2)
    with pytest.raises(ValidationError, match="_request_id and label"):
        log_labels("m", pa.table({"id": ["x"]}), workspace=workspace)


def test_latency_percentiles_and_error_rate_per_window():
    rows = log_table(DAY, 100, seed=1, error_every=10, spacing_s=30)
    latency = pa.array(np.arange(1.0, 101.0))
    rows = rows.set_column(rows.schema.get_field_index("_latency_ms"), "_latency_ms", latency)
    out = service_metrics(rows, "1h")
    assert len(out) == 1
    row = out.iloc[0]
    assert row["requests"] == 100 and row["error_rate"] == pytest.approx(0.1)
    assert row["latency_p50"] == pytest.approx(50.5)
    assert row["latency_p99"] == pytest.approx(np.percentile(np.arange(1.0, 101.0), 99))


def test_the_prediction_log_is_read_in_the_agreed_layout(workspace):
    write_log(workspace, "m", log_table(DAY, 48, seed=1, spacing_s=3600))  # spans two days
    assert len(list((workspace.dot / "predictions" / "model=m").glob("date=*"))) == 2
    window = read_prediction_log("m", DAY + timedelta(hours=20), DAY + timedelta(hours=30), workspace=workspace)
    assert window.num_rows == 10
    assert "x" in window.column_names and "_prediction" in window.column_names
