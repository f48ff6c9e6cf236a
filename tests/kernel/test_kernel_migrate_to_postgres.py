"""`forgeml migrate --to postgres URL` copies every layer's metadata from SQLite and proves it with checksums."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from forgeml.cli import cli, main
from forgeml.errors import StorageError

TABLES = {"tracking_runs", "tracking_metrics", "tracking_params", "jobs", "job_events", "registry_versions",
          "features_objects", "dataset_versions", "monitoring_alerts", "audit_log"}


@pytest.fixture
def filled(workspace):
    """A SQLite workspace with rows in every layer: runs and metrics, a job, models, features, a dataset, an alert."""
    from sklearn.dummy import DummyClassifier

    import forgeml
    from forgeml.datasets import register_dataset
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource
    from forgeml.jobs import JobSpec, submit
    from forgeml.monitoring.alerts import fire
    from forgeml.monitoring.settings import AlertRule
    from forgeml.registry import promote, register_model

    with forgeml.start_run(name="r", experiment="e") as run:
        forgeml.log_params({"lr": 0.01, "opt": "adam"})
        for step in range(500):
            forgeml.log_metric("loss", 1.0 / (step + 1), step=step)
        forgeml.log_metric("nan_metric", float("nan"))
    submit(JobSpec(command=["echo", "hi"]), workspace)
    model = DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
    register_model("m", model, workspace=workspace)
    register_model("m", model, workspace=workspace)
    promote("m", 2, "production", workspace=workspace)
    user = Entity("user", join_keys=["user_id"])
    source = FileSource(path=str(workspace.root / "x.parquet"), timestamp_field="ts")
    FeatureStore(workspace).apply([user, FeatureView("v", entities=[user], schema=[Feature("a", float)],
                                                     source=source)])
    register_dataset("d", pa.table({"x": [1.0, 2.0], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"])}))
    fire(workspace, AlertRule(name="drift", metric="drift_share", threshold=0.3, model="m"), 0.5, {"k": 1},
         datetime.now(UTC))
    return run.id


def test_migrate_copies_every_layer_and_verifies_it(filled, workspace, postgres_url, monkeypatch):
    """Counts and checksums match per table; the copy opens as a workspace on PostgreSQL with the same data."""
    schema = f"migrated_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("FORGEML_PG_URL", postgres_url)
    result = CliRunner().invoke(cli, ["migrate", "--to", "postgres", "--schema", schema, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert {"tracking", "jobs", "registry", "features", "datasets", "monitoring"} <= set(report["sets"])
    copied = {t["table"]: t for t in report["tables"]}
    assert TABLES <= set(copied), sorted(TABLES - set(copied))
    assert copied["tracking_metrics"]["rows"] == 501 and copied["tracking_metrics"]["copied"] == 501
    assert all(t["match"] == "yes" for t in report["tables"])

    from forgeml.testing.fixtures import metadata_section, with_metadata_section
    from forgeml.tracking.api import get_run
    from forgeml.workspace import Workspace

    toml = workspace.root / "plugins.toml"
    toml.write_text(with_metadata_section(toml.read_text(), metadata_section("postgres", schema)))
    moved = Workspace(workspace.root)
    try:
        assert moved.metadata.dialect == "postgresql"
        run = get_run(filled, workspace=moved)
        rows = moved.metadata.query("SELECT COUNT(*) AS n FROM tracking_metrics WHERE key = 'loss'")
        assert rows == [{"n": 500}]
        assert moved.metadata.query("SELECT value FROM tracking_metrics WHERE key = 'nan_metric'") == [{"value": None}]
        assert run.params["lr"] == "0.01" and run.metrics["loss"] == pytest.approx(1 / 500)
        # ids were copied with their rows, and new rows get ids past them
        with moved.metadata.transaction() as tx:
            new_id = tx.execute("INSERT INTO audit_log (at, actor, action, subject) VALUES (?, ?, ?, ?) RETURNING id",
                                (1.0, "t", "a", "s")).scalar()
        assert new_id > max(r["id"] for r in moved.metadata.query("SELECT id FROM audit_log WHERE actor != 't'"))
    finally:
        moved.metadata.execute(f'DROP SCHEMA "{schema}" CASCADE')
        moved.close()


def test_migrate_refuses_a_target_that_holds_rows(filled, workspace, postgres_url):
    """A second copy into the same schema is refused before anything is written."""
    from forgeml.metadata_copy import copy_metadata, open_target

    schema = f"migrated_{uuid.uuid4().hex[:10]}"
    target = open_target(workspace, "postgres", postgres_url, schema)
    try:
        assert copy_metadata(workspace, target).ok
        with pytest.raises(StorageError, match="already holds rows"):
            copy_metadata(workspace, target)
    finally:
        target.execute(f'DROP SCHEMA "{schema}" CASCADE')
        target.close()


def test_migrate_to_an_unknown_plugin_or_a_dead_server_is_one_line(workspace, capsys):
    """A misspelt plugin name and an unreachable server each print one forgeml error line and exit 2."""
    for args, expected in ((["--to", "postgre", "postgresql://x@127.0.0.1:1/x"], "did you mean 'postgres'"),
                           (["--to", "postgres", "postgresql://x:y@127.0.0.1:1/x"], "is the server running")):
        with pytest.raises(SystemExit) as exit_:
            main(["migrate", *args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
