"""Definitions, registry versioning, lineage, and the `forgeml features` commands."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pytest
from click.testing import CliRunner

from forgeml.errors import ForgeError, NotFoundError, ValidationError


def test_definitions_normalize_and_validate():
    """Entities default their join key; dtypes accept aliases; bad names and dtypes are refused."""
    from forgeml.features import Embedding, Entity, Feature, FeatureView, FileSource

    user = Entity("user")
    assert user.join_keys == ("user",) and user.dtype == "int64"
    view = FeatureView("v", entity=user, schema=[Feature("a", float), ("b", "Int64"), ("e", Embedding(8))],
                       source=FileSource("data/x.csv"), ttl=timedelta(days=1))
    assert [f.dtype for f in view.features] == ["float64", "int64", "embedding[8]"]
    assert view.ttl == 86400.0 and view.source.file_format == "csv" and view.timestamp_field == "event_timestamp"
    assert [f.name for f in view.embedding_features] == ["e"]
    with pytest.raises(ValidationError, match="identifier"):
        Feature("bad name")
    with pytest.raises(ValidationError, match="unknown feature dtype"):
        Feature("x", "complex")
    with pytest.raises(ValidationError, match="both a join key and a feature"):
        FeatureView("w", entities=[user], features=[Feature("user")])
    with pytest.raises(ValidationError, match="at least one"):
        FeatureView("w", entities=[], features=[Feature("x")])
    with pytest.raises(ValidationError, match="declared twice"):
        FeatureView("w", entities=[user], features=[Feature("x"), Feature("x")])
    with pytest.raises(ValidationError, match="ttl"):
        FeatureView("w", entities=[user], features=[Feature("x")], ttl=-5)


def test_apply_versions_breaking_changes(workspace):
    """Same spec: unchanged; description or added feature: updated in place; type change or removal: new version."""
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView

    user = Entity("user", join_keys=["user_id"])
    store = FeatureStore(workspace)

    def view(**kw):
        base = dict(name="v", entities=[user], features=[Feature("a"), Feature("b", "int64")])
        return FeatureView(**{**base, **kw})

    def apply_view(v):
        changes = store.apply([v])
        assert [c.action for c in changes if c.kind == "entity"] == ["unchanged"]
        return [c for c in changes if c.kind == "view"]

    assert [c.action for c in store.apply([user, view()])] == ["created", "created"]
    assert [c.action for c in store.apply([user, view()])] == ["unchanged", "unchanged"]
    (change,) = apply_view(view(description="now documented", features=[Feature("a"), Feature("b", "int64"),
                                                                          Feature("c")]))
    assert (change.action, change.version) == ("updated", 1)
    (change,) = apply_view(view(features=[Feature("a"), Feature("b", "float64"), Feature("c")]))
    assert (change.action, change.version) == ("new_version", 2)
    assert change.reasons == ["feature 'b' dtype changed int64 -> float64"]
    (change,) = apply_view(view(features=[Feature("a"), Feature("b", "float64")]))
    assert (change.action, change.version, change.reasons) == ("new_version", 3, ["feature 'c' removed"])
    assert store.registry.versions("view", "v") == [1, 2, 3]
    assert store.registry.get_spec("view", "v", 1)[1]["description"] == "now documented"
    assert store.get_feature_view("v").feature("b").dtype == "float64"
    (_, planned) = store.plan([view(features=[Feature("a")])])
    assert planned.action == "new_version" and store.registry.versions("view", "v") == [1, 2, 3]


def test_lineage_from_source_to_model(workspace, defs):
    """apply records source -> view; other layers append view -> dataset -> run -> model; both directions query."""
    from forgeml.features import FeatureStore

    store = FeatureStore(workspace)
    store.apply([defs["user"], defs["stats"]])
    store.record_lineage("view", "user_stats", "dataset", "train@1")
    store.record_lineage("dataset", "train@1", "run", "abc123")
    store.record_lineage("run", "abc123", "model", "churn@1")
    store.record_lineage("run", "abc123", "model", "churn@1")  # repeats are ignored
    source = defs["stats"].source.label
    down = store.lineage("source", source)["downstream"]
    assert {(e["dst_kind"], e["dst"]) for e in down} == {("view", "user_stats"), ("dataset", "train@1"),
                                                          ("run", "abc123"), ("model", "churn@1")}
    up = store.lineage("model", "churn@1")["upstream"]
    assert {(e["src_kind"], e["src"]) for e in up} == {("source", source), ("entity", "user"),
                                                       ("view", "user_stats"), ("dataset", "train@1"),
                                                       ("run", "abc123")}


DEFINITIONS = '''
from datetime import timedelta
import pandas as pd
from forgeml.features import Entity, Feature, FeatureView, FileSource

user = Entity("user", join_keys=["user_id"])

def doubled(df):
    return df.assign(double_spend=df["spend"] * 2)

stats = FeatureView("stats", entities=[user], source=FileSource("data/users"),
                    features=[Feature("clicks", "{clicks_dtype}"), Feature("double_spend")],
                    transformation=doubled, ttl=timedelta(days=3), freshness_sla=3600)
'''


def _run(*args):
    from forgeml.cli import cli

    result = CliRunner().invoke(cli, ["features", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_apply_ls_show_diff_materialize_status(workspace, user_source):
    """The CLI applies features.py, lists, shows, diffs a breaking change, materializes and reports status."""
    (workspace.root / "features.py").write_text(textwrap.dedent(DEFINITIONS.replace("{clicks_dtype}", "int64")))
    out = _run("apply")
    assert "created" in out and "stats v1" in out
    listed = json.loads(_run("ls", "--json"))
    assert {(r["kind"], r["name"], r["version"]) for r in listed} == {("entity", "user", 1), ("view", "stats", 1)}
    shown = json.loads(_run("show", "stats", "--json"))
    assert shown["spec"]["transformation"]["python"]["qualname"] == "doubled"
    assert shown["lineage"]["upstream"]
    (workspace.root / "features.py").write_text(textwrap.dedent(DEFINITIONS.replace("{clicks_dtype}", "float64")))
    diff = _run("diff")
    assert "new version" in diff and "~ feature clicks: int64 -> float64" in diff
    assert json.loads(_run("ls", "--json"))[1]["version"] == 1  # diff changed nothing
    assert "new version" in _run("apply")
    out = json.loads(_run("materialize", "--end", "2024-03-04T00:00:00", "--json"))
    assert out == [{"view": "stats", "start": None, "end": "2024-03-04T00:00:00+00:00", "rows": 3}]
    assert "stats: 0 rows" in _run("materialize", "--end", "2024-03-04")
    status = json.loads(_run("status", "--json"))
    assert status[0]["view"] == "stats" and status[0]["stale"] is True
    assert "STALE" in _run("status")


def test_python_transformation_resolves_in_another_process(workspace, user_source):
    """A function from a definitions file is imported again from the registry when this process has not seen it."""
    from forgeml.features import FeatureStore, load_definitions
    from forgeml.features.definitions import FUNCTIONS

    (workspace.root / "features.py").write_text(textwrap.dedent(DEFINITIONS.replace("{clicks_dtype}", "int64")))
    FeatureStore(workspace).apply(load_definitions("features.py", base=workspace.root))
    FUNCTIONS.clear()  # what a fresh process knows
    import sys

    for name in [m for m in sys.modules if m.startswith("forgeml_definitions_")]:
        del sys.modules[name]
    from forgeml.features import registry as reg

    reg._loaded_files.clear()
    fresh = FeatureStore(workspace)
    fresh.materialize(end="2024-03-04T00:00:00+00:00")
    assert fresh.online.read("stats", [(1,)], ["double_spend"]).column("double_spend").to_pylist() == [6.0]


def test_cli_errors_are_one_line(workspace):
    """A missing definitions file and an unknown view give ForgeErrors with the fix."""
    from forgeml.features import load_definitions

    with pytest.raises(NotFoundError, match="does not exist"):
        load_definitions("features.py", base=workspace.root)
    (workspace.root / "empty.py").write_text("x = 1\n")
    with pytest.raises(ForgeError, match="defines no Entity"):
        load_definitions("empty.py", base=workspace.root)
    from forgeml.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["features", "show", "nope"])
    assert exit_info.value.code == 2


def test_sql_source_and_applying_a_view_alone(workspace, user_source):
    """A DuckDB query source reads paths relative to the workspace; a view's entity is registered with it."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, SqlSource

    user = Entity("user", join_keys=["user_id"])
    view = FeatureView("big_spenders", entities=[user], features=[Feature("spend")],
                       source=SqlSource("SELECT * FROM read_parquet('data/users/**/*.parquet') WHERE spend >= 3"))
    store = FeatureStore(workspace)
    changes = store.apply([view])
    assert [(c.kind, c.name, c.action) for c in changes] == [("entity", "user", "created"),
                                                               ("view", "big_spenders", "created")]
    out = store.get_historical_features(pd.DataFrame({"user_id": [1, 2], "event_timestamp": [
        pd.Timestamp("2024-03-03", tz="UTC")] * 2}), ["big_spenders:spend"])
    assert out["spend"].tolist() == [3.0, 10.0]  # 20.0 (at 50 h) is after the entity row: never used
