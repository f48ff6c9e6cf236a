"""The s3 plugin in a workspace: artifacts, pushed feature rows and Parquet file sources in a bucket.

No real S3 runs here: the endpoint is moto's server mode on loopback (tests/services/s3.sh), an in-memory
mock of S3. The tests keep to what real S3 and moto both do (path-style put/get/head/list/copy/delete).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from forgeml.errors import ConfigError, StorageError

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _sections(endpoint: str, bucket: str) -> str:
    from forgeml.workspace import default_config_text

    text = default_config_text()
    artifacts = (f'[storage.artifacts]\nplugin = "s3"\nroot = "s3://{bucket}/artifacts"\n'
                 f'endpoint_url = "{endpoint}"\n\n')
    offline = (f'[storage.offline]\nplugin = "s3"\nroot = "s3://{bucket}/offline"\n'
               f'endpoint_url = {{ env = "FORGEML_TEST_S3_ENDPOINT" }}\n\n')
    text = re.sub(r"\[storage\.artifacts\]\n.*?\n\n", artifacts, text, flags=re.S)
    return re.sub(r"\[storage\.offline\]\n.*?\n\n", offline, text, flags=re.S)


@pytest.fixture
def s3_workspace(configure, s3_endpoint, monkeypatch):
    """A workspace whose artifacts and offline features live in a fresh bucket (the endpoint as a secret)."""
    bucket = s3_endpoint.new_bucket()
    monkeypatch.setenv("FORGEML_TEST_S3_ENDPOINT", s3_endpoint.endpoint_url)
    ws = configure(_sections(s3_endpoint.endpoint_url, bucket))
    ws.test_bucket = bucket
    return ws


def test_run_artifacts_land_in_the_bucket_and_come_back(s3_workspace, s3_endpoint, tmp_path):
    """log_artifact stores the file under its sha256 in the bucket; download returns identical bytes."""
    import forgeml
    import forgeml.tracking

    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    with forgeml.start_run(experiment="s3") as run:
        forgeml.log_artifact(model)
    keys = s3_endpoint.filesystem().find(f"{s3_workspace.test_bucket}/artifacts/objects")
    assert len(keys) == 1 and keys[0].endswith(s3_workspace.artifacts.put_bytes(model.read_bytes()))
    [path] = forgeml.tracking.download_artifacts(run.id, tmp_path / "back")
    assert path.read_bytes() == model.read_bytes()


def test_pushed_rows_and_s3_file_sources_join_point_in_time(s3_workspace, s3_endpoint):
    """Rows pushed offline are Parquet in the bucket; a FileSource at an s3:// URL is read through the same endpoint."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource, PushSource

    bucket = s3_workspace.test_bucket
    prices = pd.DataFrame({"user_id": [1, 1, 2], "event_timestamp": [T0, T0 + timedelta(hours=2), T0],
                           "price": [10.0, 12.0, 20.0]})
    with s3_endpoint.filesystem().open(f"{bucket}/sources/prices/part-0.parquet", "wb") as f:
        prices.to_parquet(f)
    user = Entity("user", join_keys=["user_id"])
    pushed = FeatureView("txn", entities=[user], source=PushSource("txn_push"), features=[Feature("amount")])
    filed = FeatureView("prices", entities=[user], source=FileSource(f"s3://{bucket}/sources/prices"),
                        features=[Feature("price")])
    store = FeatureStore(s3_workspace)
    store.apply([user, pushed, filed])
    store.push("txn", pd.DataFrame({"user_id": [1, 2], "event_timestamp": [T0, T0 + timedelta(hours=1)],
                                    "amount": [5.0, 7.0]}))
    assert s3_endpoint.filesystem().glob(f"{bucket}/offline/*/date=2024-03-01/*.parquet")
    entities = pd.DataFrame({"user_id": [2, 1, 1], "event_timestamp": [T0 + timedelta(hours=3), T0 + timedelta(hours=1),
                                                                        T0 + timedelta(hours=3)]})
    got = store.get_historical_features(entities, ["txn:amount", "prices:price"])
    assert got["user_id"].tolist() == [2, 1, 1]
    assert got["amount"].tolist() == [7.0, 5.0, 5.0]
    assert got["price"].tolist() == [20.0, 10.0, 12.0]


def _open(layer: str, settings: dict, tmp_path) -> object:
    from forgeml.testing.process import ProviderOpener

    return ProviderOpener(str(tmp_path / "ws"), layer, "s3", settings)()


@pytest.mark.parametrize("layer", ["artifact_stores", "offline_stores"])
def test_a_missing_bucket_is_one_clear_error(layer, s3_endpoint, tmp_path):
    """A bucket that does not exist is a StorageError naming it (never created behind the user's back)."""
    name = f"forgeml-absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StorageError, match=f"bucket '{name}' .* does not exist; create it first") as info:
        _open(layer, {"endpoint_url": s3_endpoint.endpoint_url, "root": f"s3://{name}/x"}, tmp_path)
    assert "\n" not in str(info.value)
    assert name not in s3_endpoint.filesystem().ls("")


@pytest.mark.parametrize("root", ["", "/tmp/folder", "gs://bucket/x", "s3://"])
def test_a_root_that_is_not_an_s3_url_is_a_config_error(root, s3_endpoint, tmp_path):
    """The root must name a bucket with s3://."""
    with pytest.raises(ConfigError, match="root must be an s3://BUCKET/PREFIX URL"):
        _open("artifact_stores", {"endpoint_url": s3_endpoint.endpoint_url, "root": root}, tmp_path)


def test_an_endpoint_nobody_answers_is_a_storage_error(s3_endpoint, tmp_path):
    """A closed port is reported as unreachable, naming the endpoint."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match=f"127.0.0.1:{port} cannot be reached"):
        _open("offline_stores", {"endpoint_url": f"http://127.0.0.1:{port}", "root": "s3://b/x"}, tmp_path)


def test_offline_reads_go_through_pyarrow_and_see_only_finished_files(s3_endpoint, tmp_path):
    """Reads list the table now (another writer's files show up), skip unfinished .tmp files, and unify schemas."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.storage.offline import ARROW_PREFIX

    bucket = s3_endpoint.new_bucket()
    store = _open("offline_stores", {"endpoint_url": s3_endpoint.endpoint_url, "root": f"s3://{bucket}/off"}, tmp_path)
    assert ARROW_PREFIX in store.table_relation("t")
    ts = pa.array([T0], pa.timestamp("us", tz="UTC"))
    store.write("t", pa.table({"user_id": [1], "event_timestamp": ts, "v": [1.0]}), "event_timestamp")
    store.write("t", pa.table({"user_id": [2], "event_timestamp": ts, "v": [2.0], "extra": ["x"]}), "event_timestamp")
    with s3_endpoint.filesystem().open(f"{bucket}/off/t/date=2024-03-01/part-half.parquet.tmp", "wb") as f:
        pq.write_table(pa.table({"user_id": [9], "event_timestamp": ts, "v": [9.0]}), f)
    rows = sorted(store.read("t").to_pylist(), key=lambda r: r["user_id"])
    assert [(r["user_id"], r["v"], r["extra"]) for r in rows] == [(1, 1.0, None), (2, 2.0, "x")]
    with pytest.raises(StorageError, match="no rows"):
        store.query(f"SELECT * FROM {store.table_relation('never_written')}")
