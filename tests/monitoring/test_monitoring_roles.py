"""Drift reports leave identifiers, labels and timestamps out (roles from the workspace's definitions),
and report categories the reference never had."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
from click.testing import CliRunner

from forgeml.monitoring import drift_report

N = 5_000


def _sides(seed: int = 1) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    base = 1_700_000_000_000_000

    def side(shifted: bool) -> pa.Table:
        return pa.table({
            # ids and times always differ between two samples: compared, they would always "drift"
            "user_id": np.arange(N) + (N if shifted else 0),
            "event_timestamp": pa.array(base + np.arange(N) * 1_000_000 + (10**12 if shifted else 0),
                                        pa.timestamp("us", tz="UTC")),
            "is_fraud": rng.integers(0, 2, N),
            "amount": rng.normal(50, 10, N),
            "category": np.where(rng.random(N) < (0.05 if shifted else 0.0), "crypto",
                                 np.array(["food", "fuel"])[rng.integers(0, 2, N)]),
        })

    return side(False), side(True)


def _define_roles(workspace) -> None:
    """A feature view keyed by user_id with event_timestamp, and an evaluation whose target was is_fraud."""
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry.evaluations import record_evaluation

    user = Entity("user", join_keys=["user_id"])
    FeatureStore(workspace).apply([user, FeatureView("spend", entities=[user], source=PushSource("spend_push"),
                                                     features=[Feature("amount")], ttl=timedelta(days=1))])
    record_evaluation("fraud", 1, "fraud_holdout@v1", "is_fraud", "classification", {"auc": 0.9}, {},
                      workspace=workspace)


def test_identifiers_labels_and_timestamps_are_skipped_with_the_reason(workspace):
    _define_roles(workspace)
    ref, cur = _sides()
    report = drift_report(ref, cur, workspace=workspace)
    assert [c.column for c in report.columns] == ["amount", "category"]
    assert report.skipped["user_id"] == "identifier: entity key of feature view 'spend'"
    assert report.skipped["event_timestamp"] == "timestamp: event time of feature view 'spend'"
    assert report.skipped["is_fraud"] == "label: the target evaluations read from fraud_holdout@v1"
    # asked for by name, a column is compared whatever its role
    assert [c.column for c in drift_report(ref, cur, columns=["user_id"], workspace=workspace).columns] == ["user_id"]


def test_without_definitions_every_shared_column_is_compared(workspace):
    ref, cur = _sides()
    report = drift_report(ref, cur, workspace=workspace)
    assert {"user_id", "is_fraud", "amount", "category"} <= {c.column for c in report.columns}
    assert "user_id" in report.drifted_columns  # why the roles matter


def test_a_category_the_reference_never_had_is_a_warning(workspace):
    ref, cur = _sides()
    report = drift_report(ref, cur, columns=["amount", "category"], workspace=workspace)
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("category: categories the reference never had: 'crypto' (")
    assert report.to_dict()["warnings"] == report.warnings
    assert not drift_report(ref, ref, columns=["category"], workspace=workspace).warnings


def test_the_cli_prints_the_warning_and_what_it_skipped(workspace, tmp_path):
    import pyarrow.parquet as pq

    from forgeml.cli import cli

    _define_roles(workspace)
    ref, cur = _sides()
    pq.write_table(ref, tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")
    result = CliRunner().invoke(cli, ["monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet")],
                                env={"COLUMNS": "160"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning: category: categories the reference never had: 'crypto'" in result.stderr
    assert "skipped user_id: identifier: entity key of feature view 'spend'" in result.stderr


def _model_with_entity_key(workspace, name: str, keys: list[str]) -> None:
    from sklearn.dummy import DummyClassifier

    from forgeml.registry import register_model

    register_model(name, DummyClassifier().fit(np.zeros((2, 1)), [0, 1]), entity_keys=keys, workspace=workspace)


def test_a_registered_models_entity_keys_are_identifiers_without_guessing(workspace):
    """No feature view defines user_id here: the registered model's entity keys say it is an identifier."""
    _model_with_entity_key(workspace, "fraud", ["user_id"])
    ref, cur = _sides()
    report = drift_report(ref, cur, workspace=workspace, model="fraud")
    assert report.skipped["user_id"] == "identifier: entity key of model 'fraud@1'"
    assert "user_id" not in {c.column for c in report.columns}
    # without naming the model, every registered model's entity keys still count
    assert drift_report(ref, cur, workspace=workspace).skipped["user_id"] == "identifier: entity key of model 'fraud@1'"


def test_the_named_models_feature_views_decide_first(workspace):
    """Two views key different columns; the model reads one of them, so its reasons name that model."""
    from sklearn.dummy import DummyClassifier

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry import promote, register_model

    user = Entity("user", join_keys=["user_id"])
    FeatureStore(workspace).apply([user, FeatureView("spend", entities=[user], source=PushSource("spend_push"),
                                                     features=[Feature("amount")], ttl=timedelta(days=1))])
    mv = register_model("churn", DummyClassifier().fit(np.zeros((2, 1)), [0, 1]), feature_views=["spend:amount"],
                        workspace=workspace)
    promote("churn", mv.version, "production", workspace=workspace)
    ref, cur = _sides()
    report = drift_report(ref, cur, workspace=workspace, model="churn")
    assert report.skipped["user_id"] == "identifier: entity key of feature view 'spend', read by 'churn@1'"
    assert report.skipped["event_timestamp"] == "timestamp: event time of feature view 'spend', read by 'churn@1'"
