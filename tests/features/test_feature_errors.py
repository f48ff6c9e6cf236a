"""Bad input gives a clear ForgeError and loses no data: unknown features, missing columns, dtypes, naive times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forgeml.errors import ForgeError, NotFoundError, ValidationError

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(workspace, defs):
    from forgeml.features import Feature, FeatureStore, FeatureView, PushSource

    store = FeatureStore(workspace)
    live = FeatureView("live", entities=[defs["user"]], source=PushSource("live_push"),
                       features=[Feature("score"), Feature("n", "int64")])
    store.apply([defs["user"], defs["stats"], live])
    return store


def _entity_df(**overrides):
    import pandas as pd

    data = {"user_id": [1], "event_timestamp": [T0 + timedelta(hours=12)]}
    data.update(overrides)
    return pd.DataFrame(data)


def test_unknown_feature_and_view_suggest_the_right_name(store):
    """A typo in a view or feature name says what exists and what was probably meant."""
    with pytest.raises(NotFoundError, match=r"unknown feature of view 'user_stats' 'clickz' \(did you mean 'clicks'"):
        store.get_historical_features(_entity_df(), ["user_stats:clickz"])
    with pytest.raises(NotFoundError, match=r"did you mean 'user_stats'"):
        store.get_online_features([{"user_id": 1}], ["user_stat:clicks"])
    with pytest.raises(ValidationError, match="'view:feature'"):
        store.get_online_features([{"user_id": 1}], ["clicks"])
    with pytest.raises(NotFoundError, match="unknown feature view 'ghost'"):
        store.push("ghost", [])


def test_missing_entity_columns(store):
    """A missing join key or timestamp column is named, with the columns that were given."""
    import pandas as pd

    with pytest.raises(ValidationError, match="lacks join key column 'user_id'"):
        store.get_historical_features(pd.DataFrame({"event_timestamp": [T0]}), ["user_stats:clicks"])
    with pytest.raises(ValidationError, match="no 'event_timestamp' column"):
        store.get_historical_features(pd.DataFrame({"user_id": [1]}), ["user_stats:clicks"])
    with pytest.raises(ValidationError, match="join key 'user_id'"):
        store.get_online_features([{"customer": 1}], ["user_stats:clicks"])
    with pytest.raises(ValidationError, match="already has a column 'clicks'"):
        store.get_historical_features(_entity_df(clicks=[3]), ["user_stats:clicks"])


def test_timestamps_without_time_zone_are_refused(store):
    """Naive times would silently shift by the machine's zone; they are an error with the fix."""
    import pandas as pd

    naive = _entity_df(event_timestamp=[datetime(2024, 3, 1, 12)])
    with pytest.raises(ValidationError, match="without a time zone.*tz_localize"):
        store.get_historical_features(naive, ["user_stats:clicks"])
    rows = pd.DataFrame({"user_id": [1], "event_timestamp": [datetime(2024, 3, 1)], "score": [1.0], "n": [1]})
    with pytest.raises(ValidationError, match="without a time zone"):
        store.push("live", rows)
    assert store.get_online_features([{"user_id": 1}], ["live:score"]).to_dict()["score"] == [None]
    assert not store.offline.has_table("live")


def test_wrong_dtypes_are_refused_before_anything_is_written(store):
    """A value that cannot be the declared dtype fails the whole push; nothing reaches either store."""
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    bad = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [now, now], "score": ["high", "low"], "n": [1, 2]})
    with pytest.raises(ValidationError, match="live:score is declared float64"):
        store.push("live", bad)
    lossy = pd.DataFrame({"user_id": [1], "event_timestamp": [now], "score": [1.0], "n": [1.5]})
    with pytest.raises(ValidationError, match="live:n is declared int64"):
        store.push("live", lossy)
    missing = pd.DataFrame({"user_id": [1], "event_timestamp": [now], "score": [1.0]})
    with pytest.raises(ValidationError, match="lack column 'n'"):
        store.push("live", missing)
    assert store.online.read_rows("live", [(1,), (2,)]) == [None, None]
    assert not store.offline.has_table("live")


def test_source_dtype_mismatch_in_training_sets(workspace, defs, tmp_path):
    """A file whose column cannot be the declared dtype fails retrieval with the feature's name."""
    import pandas as pd

    from forgeml.features import Feature, FeatureStore, FeatureView, FileSource

    path = tmp_path / "words.parquet"
    pd.DataFrame({"user_id": [1], "event_timestamp": [T0], "mood": ["happy"]}).to_parquet(path)
    view = FeatureView("moods", entities=[defs["user"]], source=FileSource(str(path)), features=[Feature("mood")])
    store = FeatureStore(workspace)
    store.apply([defs["user"], view])
    with pytest.raises(ValidationError, match="moods:mood is declared float64"):
        store.get_historical_features(_entity_df(), ["moods:mood"])


def test_push_only_to_push_sources_and_bad_windows(store):
    """Pushing to a file-backed view and materializing a reversed window are refused."""
    with pytest.raises(ValidationError, match="PushSource"):
        store.push("user_stats", [{"user_id": 1}])
    with pytest.raises(ValidationError, match="is not before end"):
        store.materialize(start=T0, end=T0 - timedelta(days=1))
    with pytest.raises(ForgeError, match="no time zone"):
        store.materialize(end=datetime(2024, 3, 1))
