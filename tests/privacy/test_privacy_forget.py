"""forget: a subject found in every place, erased from every file and table, with lineage and a record."""

from __future__ import annotations

import pytest
from privacy_support import OTHER, SUBJECT, places_holding, populate


def test_dry_run_lists_every_place_and_changes_nothing(workspace, tmp_path):
    """A dry run names the offline, online, vector, log, dataset and artifact places and leaves them intact."""
    from forgeml.privacy import forget

    populate(workspace, tmp_path)
    report = forget([f"user_id={SUBJECT}"], dry_run=True, workspace=workspace)[0]
    places = {h.place for h in report.holdings}
    assert places == {"offline", "online", "vector", "prediction_log", "datasets", "run_artifacts"}
    assert sum(h.rows for h in report.holdings if h.place == "offline") == 2
    assert report.erasure is None
    assert places_holding(workspace.root, SUBJECT)  # still there


def test_forget_leaves_no_trace_and_keeps_others(workspace, tmp_path):
    """After forget no file or table of the workspace holds the key; the other person's rows remain."""
    from forgeml.datasets import get_dataset_version, lineage, read_dataset
    from forgeml.errors import NotFoundError
    from forgeml.features import FeatureStore
    from forgeml.privacy import forget, verify_forgotten
    from forgeml.privacy.schema import erasure_rows
    from forgeml.serving import read_prediction_log

    refs = populate(workspace, tmp_path)
    report = forget(f"user_id={SUBJECT}", workspace=workspace)[0]
    assert report.erasure and report.rows >= 9
    workspace.flush_pending()
    assert places_holding(workspace.root, SUBJECT) == []
    assert verify_forgotten(f"user_id={SUBJECT}", workspace=workspace)[0].holdings == []

    store = FeatureStore(workspace)
    online = store.get_online_features([{"user_id": SUBJECT}, {"user_id": OTHER}], ["profile:age"]).to_dict()
    assert online["age"] == [None, 40.0]
    assert store.offline.read("profile").column("user_id").to_pylist().count(OTHER) == 1
    assert store.vectors.count("profile__emb") == 2
    assert read_prediction_log("churn", workspace=workspace).column("user_id").to_pylist() == [OTHER, OTHER]

    new = get_dataset_version("people@latest", workspace=workspace)
    assert new.version == 2 and read_dataset(new, workspace=workspace).column("user_id").to_pylist() == [
        OTHER, "third-1"]
    erasures = lineage(new.ref, workspace=workspace)["erasures"]
    assert erasures == [{"erasure": report.erasure, "replaced": refs["dataset"], "by": new.ref, "rows_removed": 2,
                         "at": erasures[0]["at"]}]
    with pytest.raises(NotFoundError, match="was erased"):
        read_dataset(refs["dataset"], workspace=workspace)
    record = erasure_rows(workspace)[0]
    assert record["id"] == report.erasure and SUBJECT not in str(record)


def test_a_bad_subject_is_one_clear_error(workspace):
    """A subject without '=' or with a non-identifier column is refused before anything is touched."""
    from forgeml.errors import ValidationError
    from forgeml.privacy import forget

    for bad in ("user_id", "=5", "user id=5", "user_id="):
        with pytest.raises(ValidationError, match="COLUMN=VALUE"):
            forget(bad, workspace=workspace)


def test_forget_reaches_window_state_and_its_event_history(workspace):
    """A window view's online tile state and its offline events lose the subject; other keys keep theirs."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from forgeml.features import Aggregation, Entity, FeatureStore, FeatureView, PushSource
    from forgeml.features.tiles import state_view
    from forgeml.privacy import forget

    card = Entity("card", join_keys=("card_id",))
    store = FeatureStore(workspace)
    store.apply([card, FeatureView("spend", entities=[card], source=PushSource("spend"),
                                   aggregations=[Aggregation("sum", "amount", ["1d"])])])
    now = datetime.now(UTC) - timedelta(minutes=5)
    store.push("spend", pa.table({"card_id": [7, 8, 7], "event_timestamp": pa.array(
        [now, now, now + timedelta(seconds=1)], pa.timestamp("us", tz="UTC")), "amount": [1.0, 2.0, 3.0]}))
    assert store.online.read_rows(state_view("spend"), [(7,)])[0] is not None
    report = forget("card_id=7", workspace=workspace)[0]
    assert {(h.place, h.location.split("/")[0]) for h in report.holdings} >= {("online", state_view("spend")),
                                                                            ("offline", "spend")}
    assert store.online.read_rows(state_view("spend"), [(7,), (8,)])[0] is None
    assert store.online.read_rows(state_view("spend"), [(8,)])[0] is not None
    assert store.offline.read("spend").column("card_id").to_pylist() == [8]


def test_forget_rebuilds_the_tiles_of_other_entities_that_aggregated_the_subject(workspace):
    """A merchant-keyed window view counting distinct users and summing amounts forgets one user's events:
    its tiles are rebuilt from the remaining events, so the distinct set, sums and counts lose them."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from forgeml.features import Aggregation, Entity, FeatureStore, FeatureView, PushSource
    from forgeml.features.tiles import state_view
    from forgeml.privacy import forget, verify_forgotten

    merchant = Entity("merchant", join_keys=("merchant_id",))
    store = FeatureStore(workspace)
    store.apply([merchant, FeatureView("sales", entities=[merchant], source=PushSource("sales"), aggregations=[
        Aggregation("count_distinct", "email", ["1d"], dtype="string"), Aggregation("sum", "amount", ["1d"])])])
    now = datetime.now(UTC) - timedelta(minutes=5)
    store.push("sales", pa.table({
        "merchant_id": [1, 1, 2, 1], "email": ["ana@example.com", "bo@example.com", "ana@example.com", "bo@example.com"],
        "event_timestamp": pa.array([now + timedelta(seconds=i) for i in range(4)], pa.timestamp("us", tz="UTC")),
        "amount": [5.0, 7.0, 1.0, 2.0]}))
    refs = ["sales:email_count_distinct_1d", "sales:amount_sum_1d"]
    before = store.get_online_features([{"merchant_id": 1}, {"merchant_id": 2}], refs).to_dict()
    assert before["email_count_distinct_1d"] == [2, 1] and before["amount_sum_1d"] == [14.0, 1.0]
    planned = forget("email=ana@example.com", dry_run=True, workspace=workspace)[0]
    assert any(h.place == "window_tiles" and "to rebuild" in h.location for h in planned.holdings)
    report = forget("email=ana@example.com", workspace=workspace)[0]
    assert [h.location for h in report.holdings if h.place == "window_tiles"] == [
        "sales (rebuilt from the remaining events)"]
    after = store.get_online_features([{"merchant_id": 1}, {"merchant_id": 2}], refs).to_dict()
    assert after["email_count_distinct_1d"] == [1, 0] and after["amount_sum_1d"] == [9.0, None]
    state = store.online.read_rows(state_view("sales"), [(1,)])[0]
    assert state is not None and "ana@example.com" not in state[1]["state"]  # the distinct set lost her
    assert not verify_forgotten("email=ana@example.com", workspace=workspace)[0].holdings
