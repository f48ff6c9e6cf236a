"""The quickstart end to end at its smallest size: every real component, each step's outcome checked.

The tiny scale generates a few thousand transactions, tunes two trials as real scheduler jobs,
serves from a real `forgeml serve` process on loopback and retrains through the real pipeline
that a real drift alert starts. Nothing is faked.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path

import pytest

from forgeml.errors import ForgeError, ValidationError
from forgeml.quickstart import SCALES, QuickstartStepError, run_quickstart
from forgeml.quickstart.features import FEATURE_REFS, MODEL_INPUTS
from forgeml.quickstart.layout import MARKER
from forgeml.quickstart.lifecycle import STEPS
from forgeml.workspace import Workspace


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.slow
def test_the_whole_lifecycle_runs_and_every_step_leaves_its_trace(tmp_path: Path):
    from forgeml.datasets import list_versions, read_dataset
    from forgeml.features import FeatureStore
    from forgeml.monitoring import list_alerts
    from forgeml.pipelines import get_run
    from forgeml.registry import audit_trail, get_model_version
    from forgeml.registry import list_versions as model_versions
    from forgeml.serving import read_prediction_log

    events = []
    summary = run_quickstart(tmp_path / "qs", "tiny", progress=events.append)
    root = Path(summary.directory)

    done = [e.name for e in events if e.state == "done"]
    assert done == ["workspace", *[name for name, _, _ in STEPS]]
    assert not [e for e in events if e.state == "failed"]
    assert [s.name for s in summary.steps] == done
    for name in ("train.py", "retrain_pipeline.py", "space.toml", "expectations.toml", "plugins.toml"):
        assert (root / name).is_file(), name

    ws = Workspace(root)
    try:
        # data and features
        assert summary.transactions > 10_000 and 0.005 < summary.fraud_rate < 0.1
        assert any((root / "data" / "transactions").glob("date=*/*.parquet"))
        store = FeatureStore(ws)
        assert {v.name for v in store.list_feature_views()} == {"user_stats_30d", "card_activity"}
        assert summary.feature_views == ["user_stats_30d", "transaction_features", "card_activity"]
        online = store.get_online_features([{"user_id": 1, "amount": 50.0, "category": "online"}], FEATURE_REFS)
        values = online.to_dict()
        assert values["txn_count_30d"][0] > 0 and values["risky_category"] == [1.0]
        assert values["amount_vs_mean"][0] == pytest.approx(50.0 / values["mean_amount_30d"][0])

        # the training set, its validation and holdout
        assert summary.dataset == "fraud_training@v1" and summary.holdout == "fraud_holdout@v1"
        training = read_dataset("fraud_training@v1", workspace=ws)
        assert training.num_rows == summary.training_rows > 1000
        assert set(MODEL_INPUTS) <= set(training.column_names)
        assert training["mean_amount_30d"].null_count == 0
        assert summary.validation.endswith("expectations passed")

        # tuning through the scheduler, the registered model and its evaluation
        assert summary.trials_complete >= 1
        assert summary.trials_complete + summary.trials_pruned + summary.trials_failed == SCALES["tiny"].trials
        first = get_model_version("fraud", 1, workspace=ws)
        assert [c["name"] for c in first.signature["inputs"]] == MODEL_INPUTS
        assert first.feature_views == FEATURE_REFS and first.entity_keys == ["user_id"]
        assert first.datasets == ["fraud_training@v1"] and first.flavor == "torch"
        assert summary.roc_auc is not None and summary.roc_auc >= SCALES["tiny"].min_auc
        assert set(summary.roc_auc_by_category) == {"grocery", "fuel", "travel", "online", "restaurant",
                                                     "electronics"}
        assert summary.promoted_version == 1
        assert any(a["action"] == "model.stage" and a["subject"] == "model:fraud@1"
                   for a in audit_trail("fraud", workspace=ws))

        # the README's search example finds the tuning trials
        from forgeml.tracking import search_runs

        example = re.search(r'forgeml runs search "([^"]+)"', (Path(__file__).parents[2] / "README.md").read_text())
        assert len(search_runs(example.group(1), workspace=ws)) >= summary.trials_complete

        # serving by entity key, with every request in the prediction log
        tiny = SCALES["tiny"]
        assert summary.requests == tiny.normal_requests + tiny.drift_requests
        assert summary.request_errors == 0 and 0 < summary.p50_ms <= summary.p99_ms
        log = read_prediction_log("fraud", workspace=ws)
        assert log.num_rows >= summary.requests
        assert {"user_id", "amount", "category", "amount_vs_mean", "_prediction"} <= set(log.column_names)
        assert not _port_open(summary.server_url)  # stopped at the end

        # the streamed 10-minute card count was served from the stream, and nothing was skewed
        assert summary.streamed_events >= tiny.normal_requests and summary.skew_share == 0.0
        served = log.column("card_txns_10m").to_pylist()[:tiny.normal_requests]
        assert min(served) >= 1  # each request's own card event had been streamed before it

        # drift detected, the alert fired and started the retraining pipeline
        assert summary.baseline_drift_share < 0.4 <= summary.drift_share
        assert "amount" in summary.drifted_features and "category" in summary.drifted_features
        alerts = list_alerts(status="all", workspace=ws)
        assert [a.id for a in alerts] == [summary.alert_id]
        assert alerts[0].rule == "fraud-feature-drift" and alerts[0].pipeline == "retrain_fraud"
        run = get_run(summary.pipeline_run, workspace=ws)
        assert run.status == "SUCCEEDED" and run.cause.startswith(f"alert:{summary.alert_id} ")
        assert [v.version for v in list_versions("fraud_training", workspace=ws)] == [1, 2]

        # the retrained version went through the gates
        assert summary.retrained_version == 2 and summary.retrained_roc_auc is not None
        retrained = get_model_version("fraud", 2, workspace=ws)
        assert retrained.datasets == ["fraud_training@v2"]
        assert [v.version for v in model_versions("fraud", workspace=ws)] == [1, 2]
        if summary.retrained_promoted:
            assert retrained.stage == "PRODUCTION" and get_model_version("fraud", 1, workspace=ws).stage == "ARCHIVED"
            assert summary.served_version_after == 2  # the running server hot-swapped to it
        else:
            assert retrained.stage == "STAGING" and summary.retrained_gates
        # the experiment: arms with propensities and a holdout on the running server, late labels, a decision
        from forgeml.feedback.schema import get_experiment

        experiment = get_experiment(ws, "quickstart_ab")
        assert experiment["status"] == "stopped" and experiment["decision"]["action"] in ("keep", "promote")
        tagged = read_prediction_log("fraud", workspace=ws).to_pandas()
        tagged = tagged[tagged["_experiment"] == "quickstart_ab"]
        assert set(tagged["_arm"]) <= {"control", "candidate", "holdout"} and len(tagged) >= tiny.drift_requests
        assert tagged["_propensity"].notna().all() and "decision:" in summary.experiment
        # labels: chargebacks arrived through the label set, active learning asked the fraud team about the rest
        from forgeml.labeling import get_labels
        from forgeml.labeling.labelsets import lineage

        kinds = {r.source_kind for r in get_labels("chargebacks", workspace=ws)}
        assert kinds == {"outcome", "annotator"}
        assert len(get_labels("chargebacks", kinds=["annotator"], workspace=ws)) == 40
        assert lineage("chargebacks", workspace=ws)["training_sets"][-1]["models"] == ["fraud_triage@2"]
        assert "margin sampling" in summary.labels
    finally:
        ws.close()

    # a second run refuses the folder and leaves it as it was
    with pytest.raises(ValidationError, match="--force"):
        run_quickstart(root, "tiny")
    assert (root / MARKER).exists() and (root / "train.py").exists()


def test_a_folder_with_other_files_is_never_touched(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="--force"):
        run_quickstart(mine, "tiny")
    with pytest.raises(ValidationError, match="never deletes other files"):
        run_quickstart(mine, "tiny", force=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    with pytest.raises(ValidationError, match="is a file"):
        run_quickstart(mine / "notes.txt", "tiny")


def test_a_failing_step_names_itself_and_force_replaces_a_previous_quickstart(tmp_path: Path):
    """Three users cannot fill a training set: the dataset's expectations fail, and the error says which step."""
    old = tmp_path / "qs"
    (old / ".forgeml").mkdir(parents=True)
    (old / MARKER).write_text("{}")
    (old / "stale.txt").write_text("from a previous quickstart")
    events = []
    too_small = dataclasses.replace(SCALES["tiny"], name="too-small", users=3)
    with pytest.raises(QuickstartStepError, match="step 'dataset'") as err:
        run_quickstart(old, too_small, progress=events.append, force=True)
    assert err.value.step == "dataset" and "row_count" in str(err.value)
    assert [e.name for e in events if e.state == "failed"] == ["dataset"]
    assert not (old / "stale.txt").exists() and (old / MARKER).exists()
    assert (old / ".gitignore").read_text().splitlines()[-1] == "*"  # git never offers the generated files


def test_the_cli_refuses_an_existing_quickstart_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from forgeml.cli import main

    target = tmp_path / "qs"
    (target / ".forgeml").mkdir(parents=True)
    (target / MARKER).write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        main(["quickstart", str(target)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("forgeml: error: ") and "a previous quickstart" in err[-1] and "--force" in err[-1]


def test_a_scale_that_cannot_fill_the_feature_window_is_refused():
    with pytest.raises(ValidationError, match="history_days must exceed the 30-day"):
        dataclasses.replace(SCALES["tiny"], history_days=20)
    with pytest.raises(ValidationError, match="trials must be positive"):
        dataclasses.replace(SCALES["tiny"], trials=0)
    with pytest.raises(ForgeError, match="unknown quickstart scale 'huge'"):
        run_quickstart("unused", "huge")
