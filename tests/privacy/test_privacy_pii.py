"""PII tags and pseudonyms: marked in definitions, kept out of logs and artifacts, tokenized with a key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

KEY = "k" * 32


def _view(pii_email=True):
    from forgeml.features import Entity, Feature, FeatureView, PushSource

    user = Entity("user", join_keys=("user_id",), dtype="string")
    return user, FeatureView("contact", entities=[user], source=PushSource("contact"),
                             features=[Feature("email", "string", pii=pii_email), Feature("score", "float64")])


def test_pii_tags_survive_the_registry_and_are_collected(workspace, tmp_path):
    """pii=True on features and dataset columns comes back from the registry and names the PII columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.datasets import get_dataset_version, register_dataset
    from forgeml.features import FeatureStore
    from forgeml.privacy import pii_columns

    store = FeatureStore(workspace)
    store.apply(_view())
    assert store.get_feature_view("contact").feature("email").pii
    assert not store.get_feature_view("contact").feature("score").pii
    pq.write_table(pa.table({"phone": ["1"], "x": [1]}), tmp_path / "d.parquet")
    register_dataset("calls", str(tmp_path / "d.parquet"), pii=["phone"], workspace=workspace)
    assert get_dataset_version("calls", workspace=workspace).schema[0] == {
        "name": "phone", "type": "string", "nullable": True, "pii": True}
    assert pii_columns(workspace) == {"email", "phone"}


def test_pii_stays_out_of_prediction_logs_unless_allowed(workspace):
    """A served model's log drops PII columns by default and keeps them with [privacy] log_pii = true."""
    from forgeml.features import FeatureStore
    from forgeml.pii.tags import kept_out
    from forgeml.serving import read_prediction_log
    from forgeml.serving.predlog import PredictionLogger, log_root

    FeatureStore(workspace).apply(_view())
    logger = PredictionLogger(log_root(workspace), drop_columns=kept_out(workspace))
    logger.log("m", 1, "primary", "r", datetime(2024, 1, 1, tzinfo=UTC), 1.0,
               {"email": ["a@b.c"], "score": [0.5]}, [1.0], 1)
    logger.flush()
    logged = read_prediction_log("m", workspace=workspace)
    assert "email" not in logged.column_names and logged.column("score").to_pylist() == [0.5]
    workspace.config.section("privacy").log_pii = True
    assert kept_out(workspace) == frozenset()


def test_a_run_artifact_with_pii_columns_is_refused(workspace, tmp_path):
    """log_artifact refuses a table holding a PII column and names it; a file without PII is stored."""
    import forgeml
    from forgeml.errors import ValidationError
    from forgeml.features import FeatureStore

    FeatureStore(workspace).apply(_view())
    bad, good = tmp_path / "leads.csv", tmp_path / "scores.csv"
    bad.write_text("email,score\na@b.c,1\n")
    good.write_text("score\n1\n")
    with forgeml.start_run(workspace=workspace) as run:
        with pytest.raises(ValidationError, match="PII column email"):
            run.log_artifact(bad)
        assert [a.path for a in run.log_artifact(good)] == ["scores.csv"]


def test_tokenize_is_keyed_stable_and_needs_the_key(monkeypatch):
    """The same value and key give the same pseudonym; another key another one; no key is a clear error."""
    import pandas as pd
    import pyarrow as pa

    from forgeml.errors import ConfigError
    from forgeml.privacy import pseudonym, tokenize

    monkeypatch.delenv("FORGEML_PII_KEY", raising=False)
    with pytest.raises(ConfigError, match="FORGEML_PII_KEY"):
        tokenize(pa.table({"email": ["a@b.c"]}), ["email"])
    monkeypatch.setenv("FORGEML_PII_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        pseudonym("x")
    monkeypatch.setenv("FORGEML_PII_KEY", KEY)
    table = tokenize(pa.table({"email": ["a@b.c", None, "a@b.c"], "n": [1, 2, 3]}), ["email"])
    first, missing, third = table.column("email").to_pylist()
    assert first == third and first.startswith("pii_") and "a@b.c" not in first and missing is None
    assert pseudonym("a@b.c", b"another key of 32 characters..!") != first
    frame = tokenize(pd.DataFrame({"email": ["a@b.c"]}), ["email"])
    assert frame["email"].tolist() == [first]
    with pytest.raises(Exception, match="no column 'phone'"):
        tokenize(pa.table({"email": ["x"]}), ["phone"])


def test_tokenize_inside_a_view_gives_pseudonyms_online_and_offline(workspace, monkeypatch):
    """A view whose transformation tokenizes the e-mail stores pseudonyms in both stores, never the address."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.privacy import pseudonym, tokenize

    monkeypatch.setenv("FORGEML_PII_KEY", KEY)
    user = Entity("user", join_keys=("user_id",))
    view = FeatureView("mail", entities=[user], source=PushSource("mail"),
                       features=[Feature("email", "string", pii=True)],
                       transformation=lambda df: tokenize(df, ["email"]))
    store = FeatureStore(workspace)
    store.apply([user, view])
    store.push("mail", pd.DataFrame({"user_id": [7], "event_timestamp": [datetime(2024, 1, 1, tzinfo=UTC)],
                                     "email": ["p@q.r"]}))
    expected = pseudonym("p@q.r", KEY.encode())
    assert store.offline.read("mail").column("email").to_pylist() == [expected]
    assert store.get_online_features([{"user_id": 7}], ["mail:email"]).to_dict()["email"] == [expected]


def test_alerts_keep_figures_of_pii_columns_but_not_their_values(workspace):
    """An alert's details lose a PII column's values (categories, samples) and keep its statistics."""
    from datetime import UTC, datetime

    from forgeml.features import FeatureStore
    from forgeml.monitoring.alerts import add_details, fire, get_alert
    from forgeml.monitoring.settings import AlertRule

    FeatureStore(workspace).apply(_view())
    details = {"results": [{"column": "email", "test": "chi2", "statistic": 9.5, "p_value": 0.01,
                            "details": {"categories": ["ann@example.org"]}},
                           {"column": "score", "test": "psi", "statistic": 0.2, "details": {"bins": [1, 2]}}],
               "top_values": {"email": ["ann@example.org"], "score": [0.5]}}
    rule = AlertRule(name="drift", metric="drift_share", threshold=0.1, model="m")
    alert, _ = fire(workspace, rule, 0.5, details, datetime.now(UTC))
    add_details(alert.id, {"sample": {"email": "bob@example.org"}}, workspace=workspace)
    stored = get_alert(alert.id, workspace)
    assert "example.org" not in str(stored.details)
    assert stored.details["results"][0] == {"column": "email", "test": "chi2", "statistic": 9.5, "p_value": 0.01}
    assert stored.details["results"][1]["details"] == {"bins": [1, 2]}
    assert stored.details["top_values"] == {"email": "[pii]", "score": [0.5]}


def test_rotating_the_pseudonym_key_moves_stored_pseudonyms_under_the_new_key(workspace, monkeypatch):
    """After appending a key and rotating, the stores hold only pseudonyms under the whole chain: the same ones
    new data gets, and the ones `upgrade` gives an outside table; a second rotation finds nothing to move."""
    import pandas as pd
    import pyarrow as pa
    from click.testing import CliRunner

    from forgeml.cli import cli
    from forgeml.errors import ConfigError
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.privacy import pseudonym, rotate_pseudonyms, tokenize, upgrade

    monkeypatch.setenv("FORGEML_PII_KEY", KEY)
    user = Entity("user", join_keys=("user_id",))
    store = FeatureStore(workspace)
    store.apply([user, FeatureView("mail", entities=[user], source=PushSource("mail"),
                                   features=[Feature("email", "string", pii=True)],
                                   transformation=lambda df: tokenize(df, ["email"]))])
    store.push("mail", pd.DataFrame({"user_id": [7], "event_timestamp": [datetime(2024, 1, 1, tzinfo=UTC)],
                                     "email": ["p@q.r"]}))
    old = pseudonym("p@q.r", KEY.encode())
    with pytest.raises(ConfigError, match="append the new key"):
        rotate_pseudonyms(workspace=workspace)
    new_key = "second-key-0123456789abcdef"
    monkeypatch.setenv("FORGEML_PII_KEY", f"{KEY},{new_key}")
    chain = [KEY.encode(), new_key.encode()]
    new = pseudonym("p@q.r", chain)
    assert new.startswith("pii2_") and new != old and pseudonym("p@q.r") == new
    planned = rotate_pseudonyms(dry_run=True, workspace=workspace)
    assert planned["changed"] == {"offline:mail": 1, "online:mail": 1}
    assert store.offline.read("mail").column("email").to_pylist() == [old]  # the dry run changed nothing
    result = CliRunner().invoke(cli, ["pseudonyms", "rotate", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changed"] == {"offline:mail": 1, "online:mail": 1}
    assert store.offline.read("mail").column("email").to_pylist() == [new]
    assert store.get_online_features([{"user_id": 7}], ["mail:email"]).to_dict()["email"] == [new]
    # data arriving after the rotation joins with the rotated data; an outside table is upgraded for joins
    store.push("mail", pd.DataFrame({"user_id": [8], "event_timestamp": [datetime(2024, 1, 2, tzinfo=UTC)],
                                     "email": ["p@q.r"]}))
    assert set(store.offline.read("mail").column("email").to_pylist()) == {new}
    outside = upgrade(pa.table({"email": [old, "not a pseudonym", None]}))
    assert outside.column("email").to_pylist() == [new, "not a pseudonym", None]
    assert rotate_pseudonyms(workspace=workspace)["changed"] == {}
    for path in (p for p in (workspace.root / ".forgeml").rglob("*") if p.is_file()):
        assert old.encode() not in path.read_bytes(), path  # neither files nor the online database keep it
