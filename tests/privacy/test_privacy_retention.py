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
