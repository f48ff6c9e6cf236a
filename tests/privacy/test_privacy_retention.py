"""Retention: gc's dry run lists what is past its limit and changes nothing; gc then removes exactly that."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from forgeml.cli import cli


def _run(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_gc_dry_run_then_apply(workspace):
    """Old log days, old runs, an archived model's files and an orphan object go; recent ones stay."""
    import os

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import forgeml
    from forgeml.registry import promote, register_model
    from forgeml.serving.predlog import PredictionLogger, log_root

    limits = workspace.config.section("privacy").retention
    limits.prediction_logs_days, limits.runs_days, limits.archived_model_artifacts_days = 30, 30, 30
    limits.unreferenced_artifacts_hours = 1
    now = datetime.now(UTC)
    logger = PredictionLogger(log_root(workspace))
    for age in (90, 1):
        logger.log("m", 1, "primary", "r", now - timedelta(days=age), 1.0, {"x": [1.0]}, [0.0], 1)
    logger.flush()
    with forgeml.start_run(workspace=workspace) as old_run:
        forgeml.log_metric("loss", 1.0)
    with forgeml.start_run(workspace=workspace) as new_run:
        forgeml.log_metric("loss", 1.0)
    workspace.metadata.execute("UPDATE tracking_runs SET end_time = ? WHERE id = ?", (time.time() - 90 * 86400,
                                                                                      old_run.id))
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    mv = register_model("churn", model, workspace=workspace)
    promote("churn", mv.version, "ARCHIVED", workspace=workspace)
    workspace.metadata.execute("UPDATE registry_versions SET stage_changed_at = ? WHERE name = 'churn'",
                               (time.time() - 90 * 86400,))
    orphan = workspace.artifacts.put_bytes(b"nobody points here")
    path = next((workspace.root / ".forgeml" / "artifacts" / "objects").rglob(orphan))
    os.utime(path, (time.time() - 7200, time.time() - 7200))

    planned = json.loads(_run("gc", "--dry-run", "--json"))
    old_day = (now - timedelta(days=90)).date().isoformat()
    assert planned["prediction_log_days"] == [f"model=m/date={old_day}"]
    assert planned["runs"] == [old_run.id]
    assert planned["archived_model_artifacts"] == [f"churn@{mv.version}"]
    assert planned["unreferenced_artifacts"] == [orphan]
    assert workspace.artifacts.exists(orphan) and (log_root(workspace) / f"model=m/date={old_day}").is_dir()

    done = json.loads(_run("gc", "--json"))
    assert {k: done[k] for k in ("runs", "unreferenced_artifacts")} == {"runs": [old_run.id],
                                                                        "unreferenced_artifacts": [orphan]}
    assert not workspace.artifacts.exists(orphan)
    assert not (log_root(workspace) / f"model=m/date={old_day}").exists()
    assert [r["id"] for r in workspace.metadata.query("SELECT id FROM tracking_runs")] == [new_run.id]
    assert not workspace.artifacts.exists(mv.artifact_digest)
    again = json.loads(_run("gc", "--dry-run", "--json"))
    assert again["runs"] == [] and again["unreferenced_artifacts"] == []


def _old_log_day(workspace, days: int = 90) -> str:
    from forgeml.serving.predlog import PredictionLogger, log_root

    now = datetime.now(UTC)
    logger = PredictionLogger(log_root(workspace))
    for age in (days, 1):
        logger.log("m", 1, "primary", "r", now - timedelta(days=age), 1.0, {"x": [1.0]}, [0.0], 1)
    logger.close()
    return f"model=m/date={(now - timedelta(days=days)).date().isoformat()}"


def test_the_scheduler_daemon_applies_retention_on_its_schedule(workspace):
    """With every_hours set, a running scheduler applies the limits by itself, records the run in the audit
    log, and `gc status` shows the last and next run; before that, status says it is not scheduled."""
    from forgeml.jobs.scheduler import Scheduler
    from forgeml.serving.predlog import log_root

    assert "not scheduled" in _run("gc", "status")
    limits = workspace.config.section("privacy").retention
    limits.prediction_logs_days, limits.every_hours = 30, 6
    day = _old_log_day(workspace)
    assert "last run: never" in _run("gc", "status")
    scheduler = Scheduler(workspace).start_in_thread()
    try:
        deadline = time.monotonic() + 60
        status = json.loads(_run("gc", "status", "--json"))
        while status["last_run"] is None and time.monotonic() < deadline:  # the run is recorded after it ends
            time.sleep(0.2)
            status = json.loads(_run("gc", "status", "--json"))
        assert status["scheduler_pid"] is not None and status["note"] == ""
    finally:
        scheduler.stop()
    assert not (log_root(workspace) / day).exists()
    last = status["last_run"]
    assert last["trigger"] == "schedule" and last["counts"]["prediction_log_days"] == 1
    assert status["next_run_at"] == last["at"] + 6 * 3600
    audit = workspace.metadata.query("SELECT actor, detail FROM audit_log WHERE action = 'privacy.retention'")
    assert [json.loads(r["detail"])["trigger"] for r in audit] == ["schedule"]
    text = _run("gc", "status")
    assert "every: 6 h" in text and "(schedule): prediction log days 1" in text and "next run:" in text
    assert "no scheduler runs" in text  # stopped


def test_a_scheduled_run_waits_for_its_interval_and_records_failures(workspace, monkeypatch):
    """run_if_due runs once per interval whatever started the last run; a failed run is recorded with its error."""
    from forgeml.errors import StorageError
    from forgeml.privacy import retention

    limits = workspace.config.section("privacy").retention
    assert retention.run_if_due(workspace) is None  # no schedule: nothing runs
    limits.prediction_logs_days, limits.every_hours = 30, 1
    _old_log_day(workspace)
    now = time.time()
    first = retention.run_if_due(workspace, now)
    assert first is not None and len(first.prediction_log_days) == 1
    assert retention.run_if_due(workspace, now + 1800) is None  # not due yet
    _run("gc")  # a run by hand counts as the last run too
    assert json.loads(_run("gc", "status", "--json"))["last_run"]["trigger"] == "command"

    def broken(*_args, **_kwargs):
        raise StorageError("disk full while deleting")

    monkeypatch.setattr(retention, "_prediction_logs", broken)
    try:
        retention.run_if_due(workspace, time.time() + 3601)
    except StorageError:
        pass
    else:
        raise AssertionError("the failure was swallowed")
    last = json.loads(_run("gc", "status", "--json"))["last_run"]
    assert last["trigger"] == "schedule" and last["error"] == "disk full while deleting"
    audit = workspace.metadata.query("SELECT detail FROM audit_log WHERE action = 'privacy.retention' ORDER BY id")
    assert [json.loads(r["detail"]).get("error") for r in audit] == [None, None, "disk full while deleting"]


def test_gc_expires_old_stream_events_and_idle_window_state(workspace):
    """stream_events_days removes old days of pushed events offline; window_state_days removes the tile state
    of entities no event updated for that long; the dry run lists both and changes nothing."""
    import pyarrow as pa

    from forgeml.features import Aggregation, Entity, FeatureStore, FeatureView, PushSource
    from forgeml.features.tiles import state_view

    card = Entity("card", join_keys=("card_id",))
    store = FeatureStore(workspace)
    store.apply([card, FeatureView("spend", entities=[card], source=PushSource("spend"),
                                   aggregations=[Aggregation("sum", "amount", ["1d"])])])
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=90), now - timedelta(minutes=5)
    store.push("spend", pa.table({"card_id": [7, 8], "event_timestamp": pa.array([old, recent], pa.timestamp(
        "us", tz="UTC")), "amount": [1.0, 2.0]}), to="offline")
    store.push("spend", pa.table({"card_id": [7, 8], "event_timestamp": pa.array([recent, recent], pa.timestamp(
        "us", tz="UTC")), "amount": [1.0, 2.0]}), to="online")
    # card 7's state was last updated 60 days ago: no event since
    store.online.connection().execute("UPDATE online_rows SET event_ts = ? WHERE view = ? AND entity_key = ?",
                                      (int((time.time() - 60 * 86400) * 1e6), state_view("spend"), "7"))
    limits = workspace.config.section("privacy").retention
    limits.stream_events_days, limits.window_state_days, limits.unreferenced_artifacts_hours = 30, 30, 0
    day = f"spend/date={old.date().isoformat()}"
    planned = json.loads(_run("gc", "--dry-run", "--json"))
    assert planned["stream_event_days"] == [day] and planned["window_states"] == {"spend": 1}
    assert sorted(store.offline.read("spend").column("card_id").to_pylist()) == [7, 8]
    done = json.loads(_run("gc", "--json"))
    assert done["stream_event_days"] == [day] and done["window_states"] == {"spend": 1}
    assert store.offline.read("spend").column("card_id").to_pylist() == [8]
    assert store.online.read_rows(state_view("spend"), [(7,)])[0] is None
    assert store.online.read_rows(state_view("spend"), [(8,)])[0] is not None
    again = json.loads(_run("gc", "--dry-run", "--json"))
    assert again["stream_event_days"] == [] and again["window_states"] == {}
    assert json.loads(_run("gc", "status", "--json"))["last_run"]["counts"]["window_states"] == 1
