"""The prediction log on its own: layout, columns, time filters, non-blocking appends, bad arguments."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from forgeml.errors import ValidationError
from forgeml.serving import PredictionLogger, read_prediction_log
from forgeml.serving.predlog import RESERVED, log_root


def _log(logger, model="m", day=None, request_id="r", n=2, arm="primary", error=None, version=1):
    ts = day or dt.datetime.now(dt.UTC)
    inputs = {"a": [1.0, 2.0][:n], "city": ["x", "y"][:n]}
    preds = None if error else [0.5, [0.2, 0.8]][:n]
    logger.log(model, version, arm, request_id, ts, 1.5, inputs, preds, n, error)


def test_rows_land_in_the_agreed_layout_with_reserved_columns(workspace):
    logger = PredictionLogger(log_root(workspace), flush_interval_s=0.05).start()
    jan = dt.datetime(2026, 1, 2, 10, tzinfo=dt.UTC)
    feb = dt.datetime(2026, 2, 3, 10, tzinfo=dt.UTC)
    _log(logger, day=jan, request_id="r1")
    _log(logger, day=feb, request_id="r2", arm="shadow", error="RuntimeError: boom", version=2)
    _log(logger, model="other", day=feb)
    logger.close()
    root = workspace.dot / "predictions"
    assert len(list((root / "model=m" / "date=2026-01-02").glob("*.parquet"))) == 1
    assert len(list((root / "model=m" / "date=2026-02-03").glob("*.parquet"))) == 1
    assert (root / "model=other" / "date=2026-02-03").is_dir()
    assert not list(root.rglob("*.tmp"))
    table = read_prediction_log("m")
    assert set(RESERVED) <= set(table.column_names) and {"a", "city"} <= set(table.column_names)
    frame = table.to_pandas()
    assert frame["_request_id"].tolist() == ["r1", "r1", "r2", "r2"]
    assert frame["_prediction"].tolist()[:2] == [0.5, 0.8]  # a probability pair logs the positive class
    assert frame["_prediction"].isna().tolist()[2:] == [True, True]
    assert frame["_error"].tolist()[2:] == ["RuntimeError: boom"] * 2
    assert frame["_version"].tolist() == [1, 1, 2, 2] and frame["_arm"].tolist()[2] == "shadow"
    only_feb = read_prediction_log("m", start="2026-02-01", end=dt.date(2026, 3, 1))
    assert only_feb.column("_request_id").to_pylist() == ["r2", "r2"]
    assert read_prediction_log("m", start=jan, end=jan + dt.timedelta(seconds=1)).num_rows == 2
    assert read_prediction_log("nobody").num_rows == 0


def test_logging_never_blocks_the_caller(workspace):
    logger = PredictionLogger(log_root(workspace), flush_interval_s=0.5).start()
    started = time.perf_counter()
    for i in range(2_000):
        _log(logger, request_id=f"r{i}")
    per_call_us = (time.perf_counter() - started) / 2_000 * 1e6
    assert per_call_us < 1_000  # a queue put, not a file write (generous: the machine is shared)
    logger.flush()
    assert read_prediction_log("m").num_rows == 4_000
    logger.close()


def test_a_full_queue_drops_and_counts_instead_of_growing(workspace):
    logger = PredictionLogger(log_root(workspace), max_pending_rows=10)  # writer not started
    for i in range(20):
        _log(logger, request_id=f"r{i}")
    assert logger.dropped_rows > 0
    logger.flush()
    assert read_prediction_log("m").num_rows + logger.dropped_rows == 40


def test_bad_time_bounds_are_clear_errors(workspace):
    with pytest.raises(ValidationError, match="not an ISO date"):
        read_prediction_log("m", start="yesterday")
    with pytest.raises(ValidationError, match="must be a datetime"):
        read_prediction_log("m", end=12)


def test_a_failed_write_is_counted_and_logged_and_serving_goes_on(workspace, caplog):
    """The log's folder cannot be created (a file is in the way): the write fails, nothing raises."""
    blocker = workspace.root / "blocked"
    blocker.write_text("a file, not a folder")
    logger = PredictionLogger(blocker / "predictions")
    _log(logger, n=3)
    logger.flush()
    assert logger.errors == 1 and logger.written_rows == 0
    assert "3 rows of m not written" in caplog.text and logger.last_error
    _log(logger, n=1)  # the logger still takes records after a failure
    assert logger.pending_rows == 1
