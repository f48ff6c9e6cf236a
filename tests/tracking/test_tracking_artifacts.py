"""Artifacts, comparison, metric history export and moving runs between workspaces."""

from __future__ import annotations

import json

import pytest
import yaml

import forgeml
from forgeml.errors import NotFoundError, ValidationError
from forgeml.tracking import (
    compare_runs,
    download_artifacts,
    export_run,
    get_metric_history,
    get_run,
    import_run,
    list_artifacts,
    metric_histories,
    start_run,
)


def test_files_folders_dicts_and_text(tracked, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "cfg.txt").write_text("depth=4")
    (tmp_path / "report.md").write_text("# report")
    with start_run() as run:
        forgeml.log_artifact(tmp_path / "report.md")
        forgeml.log_artifact(tmp_path / "model", name="checkpoints/best")
        forgeml.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.yaml")
        forgeml.log_dict({"a": 1}, "meta.json")
        forgeml.log_text("hello", "notes/readme.txt")
        with pytest.raises(NotFoundError):
            forgeml.log_artifact(tmp_path / "missing.bin")
        with pytest.raises(ValidationError):
            forgeml.log_text("x", "../escape.txt")
    paths = [a.path for a in list_artifacts(run.id)]
    assert paths == ["checkpoints/best/sub/cfg.txt", "checkpoints/best/weights.bin", "config.yaml", "meta.json",
                     "notes/readme.txt", "report.md"]
    out = tmp_path / "out"
    files = download_artifacts(run.id, out)
    assert len(files) == 6
    assert (out / "checkpoints/best/weights.bin").read_bytes() == b"\x00\x01" * 100
    assert yaml.safe_load((out / "config.yaml").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    assert json.loads((out / "meta.json").read_text()) == {"a": 1}
    only = download_artifacts(run.id, tmp_path / "one", "checkpoints/best")
    assert sorted(p.name for p in only) == ["cfg.txt", "weights.bin"]
    with pytest.raises(NotFoundError):
        download_artifacts(run.id, tmp_path / "none", "nope")


def test_compare_marks_the_rows_that_differ(tracked):
    with start_run(name="a", experiment="cmp") as a:
        forgeml.log_params({"lr": 0.1, "batch": 32})
        forgeml.log_metric("acc", 0.9)
    with start_run(name="b", experiment="cmp") as b:
        forgeml.log_params({"lr": 0.01, "batch": 32, "dropout": 0.5})
        forgeml.log_metric("acc", 0.92)
    frame = compare_runs([a.id, b.id[:8]]).to_pandas()
    assert list(frame.columns) == [a.id, b.id, "differs"]
    assert frame.loc["params.lr", "differs"] and not frame.loc["params.batch", "differs"]
    assert frame.loc["params.dropout", a.id] is None and frame.loc["params.dropout", "differs"]
    assert frame.loc["metrics.acc", b.id] == pytest.approx(0.92)
    assert not frame.loc["experiment", "differs"]
    with pytest.raises(ValidationError):
        compare_runs([a.id])


def test_metric_histories_export_to_arrow(tracked):
    with start_run() as a:
        for step in range(3):
            forgeml.log_metrics({"loss": 1.0 - step / 10, "acc": step / 10}, step=step)
    table = metric_histories([a.id], keys=["loss"])
    assert table.column_names == ["run_id", "key", "step", "timestamp", "value"]
    assert table.column("value").to_pylist() == [1.0, 0.9, 0.8]
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


def test_export_import_round_trip_into_another_workspace(tracked, tmp_path):
    from forgeml.workspace import Workspace

    with start_run(name="remote", experiment="far", tags={"t": "1"}) as run:
        forgeml.log_params({"lr": 3e-4})
        for step in range(50):
            forgeml.log_metric("loss", 1 / (step + 1), step=step)
        forgeml.log_text("weights", "model.txt")
        forgeml.tracking.log_input(dataset="d@v1")
    data = json.loads(json.dumps(export_run(run.id)))  # it must survive JSON
    home = Workspace.init(tmp_path / "home")
    try:
        imported = import_run(data, workspace=home)
        again = import_run(data, workspace=home)  # idempotent
        original = get_run(run.id)
        for attr in ("id", "name", "experiment", "status", "start_time", "end_time", "params", "tags", "metrics",
                     "inputs"):
            assert getattr(again, attr) == getattr(original, attr), attr
        assert imported.metrics == again.metrics
        history = get_metric_history(run.id, "loss", workspace=home)
        assert history["step"].tolist() == list(range(50))
        files = download_artifacts(run.id, tmp_path / "dl", workspace=home)
        assert files[0].read_text() == "weights"
        found = forgeml.tracking.search_runs("params.lr < 0.001", workspace=home)
        assert found["run_id"].tolist() == [run.id]
    finally:
        home.close()


def test_import_rejects_what_is_not_an_export(tracked):
    with pytest.raises(ValidationError, match="not an exported run"):
        import_run({"hello": 1})
    with start_run() as run:
        forgeml.log_text("x", "a.txt")
    data = export_run(run.id)
    data["artifacts"][0]["digest"] = "0" * 64
    with pytest.raises(ValidationError, match="corrupt"):
        import_run(data)
    assert get_run(run.id).status == "FINISHED"  # the failed import left the original alone
