"""Batch inference: Parquet and dataset versions in, chunked predictions out, optionally to the online store."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from serving_support import training_frame

from forgeml.errors import ForgeError, NotFoundError, ValidationError
from forgeml.serving import predict_batch


@pytest.fixture
def scoring_file(workspace):
    x, _ = training_frame(n=1_000, seed=5)
    x.insert(0, "user_id", np.arange(1_000))
    path = workspace.root / "score.parquet"
    pq.write_table(pa.Table.from_pandas(x, preserve_index=False), path)
    return path, x


def test_parquet_in_chunks_to_parquet_out(sklearn_model, scoring_file, workspace):
    from forgeml.registry import load_model

    path, x = scoring_file
    out = workspace.root / "out" / "scores.parquet"
    result = predict_batch("clf@production", str(path), str(out), chunk_size=128)
    assert result.rows == 1_000 and result.version == 1
    table = pq.read_table(out)
    assert table.column_names == [*x.columns, "prediction"]
    assert pq.ParquetFile(out).metadata.num_row_groups == 8  # one per chunk
    expected = load_model("clf@1").predict(x.drop(columns="user_id"))
    assert table.column("prediction").to_pylist() == np.asarray(expected).tolist()
    assert table.column("user_id").to_pylist() == list(range(1_000))


def test_dataset_version_input_and_the_cli(sklearn_model, scoring_file, workspace):
    from forgeml.cli import cli
    from forgeml.datasets import register_dataset

    path, _ = scoring_file
    dv = register_dataset("scoring", str(path))
    out = workspace.root / "from_dataset.parquet"
    runner = CliRunner()
    res = runner.invoke(cli, ["predict", "clf@production", "--input", f"scoring@v{dv.version}",
                              "--output", str(out), "--chunk-size", "300", "--json"])
    assert res.exit_code == 0, res.output
    assert '"rows": 1000' in res.output
    assert pq.read_table(out).num_rows == 1_000


def test_predictions_can_be_written_to_the_online_store(workspace, scoring_file):
    from sklearn.linear_model import LinearRegression

    from forgeml.registry import register_model

    path, x = scoring_file
    feats = x.drop(columns="user_id")
    register_model("reg", LinearRegression().fit(feats, feats.f0 * 2), input_example=feats.head(3),
                   entity_keys=["user_id"])
    result = predict_batch("reg@1", str(path), write_online="reg_scores")
    assert result.rows == 1_000 and result.output is None
    got = workspace.online_store.read("reg_scores", [(3,), (999,), (5_000,)], ["prediction"])
    values = got.column("prediction").to_pylist()
    assert values[0] == pytest.approx(x.f0[3] * 2) and values[1] == pytest.approx(x.f0[999] * 2)
    assert values[2] is None


def test_batch_input_errors_are_clear(sklearn_model, workspace, scoring_file):
    path, x = scoring_file
    with pytest.raises(NotFoundError, match="neither an existing Parquet"):
        predict_batch("clf@production", "nowhere.parquet", "out.parquet")
    with pytest.raises(ValidationError, match="give --output"):
        predict_batch("clf@production", str(path))
    with pytest.raises(ValidationError, match="no entity keys"):
        predict_batch("clf@production", str(path), write_online="v")
    thin = workspace.root / "thin.parquet"
    pq.write_table(pa.Table.from_pandas(x[["f0", "f1"]], preserve_index=False), thin)
    with pytest.raises(ValidationError, match="lacks column"):
        predict_batch("clf@production", str(thin), "out.parquet")
    assert not (workspace.root / "out.parquet").exists()


def _spend_per_click(frame):
    return (frame["spend"] / frame["clicks"]).to_numpy()


def test_feature_view_input_reads_the_views_offline_rows(workspace):
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry import register_model

    user = Entity("user", join_keys=["user_id"])
    stats = FeatureView("user_stats", entities=[user], source=PushSource("user_stats_push"),
                        features=[Feature("clicks", "int64"), Feature("spend", "float64")])
    store = FeatureStore(workspace)
    store.apply([user, stats])
    now = pd.Timestamp.now(tz="UTC")
    store.push("user_stats", pd.DataFrame({"user_id": [1, 2], "event_timestamp": [now, now], "clicks": [2, 4],
                                           "spend": [1.0, 6.0]}))
    register_model("ratio", _spend_per_click, flavor="python",
                   input_example=pd.DataFrame({"clicks": [1, 2], "spend": [1.0, 2.0]}))
    out = workspace.root / "ratio.parquet"
    result = predict_batch("ratio@1", "view:user_stats", str(out))
    table = pq.read_table(out).to_pandas().sort_values("user_id")
    assert result.rows == 2 and table["prediction"].tolist() == [0.5, 1.5]
    with pytest.raises(NotFoundError, match="no offline rows"):
        predict_batch("ratio@1", "view:nobody", str(out))


def test_a_torch_model_reads_the_columns_it_takes_in_its_own_order(workspace, scoring_file):
    """The file's columns come in another order, with a key column beside them; the MLP sees its own order."""
    import torch

    from forgeml.registry import register_model

    path, x = scoring_file
    features = x.drop(columns="user_id")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(features.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    register_model("mlp", mlp, flavor="torch", input_example=features.head(3).astype("float32"))
    shuffled = workspace.root / "shuffled.parquet"
    pq.write_table(pa.Table.from_pandas(x[["user_id", *reversed(list(features.columns))]], preserve_index=False),
                   shuffled)
    out = workspace.root / "mlp.parquet"
    assert predict_batch("mlp@1", str(shuffled), str(out), chunk_size=300).rows == 1_000
    with torch.inference_mode():
        expected = mlp(torch.tensor(features.to_numpy(), dtype=torch.float32))[:, 0].numpy()
    got = pq.read_table(out).column("prediction").to_numpy()
    assert np.allclose(got, expected, atol=1e-6)


def test_entity_keys_with_request_values_feed_on_demand_views(entity_model, workspace, tmp_path):
    """A file of user ids and amounts: stored features come by key, the on-demand ratio from each amount."""
    from forgeml.cli import cli

    pq.write_table(pa.table({"user_id": [1, 2, 3], "amount": [4.0, 2.0, 1.0]}), tmp_path / "keys.parquet")
    result = CliRunner().invoke(cli, ["predict", "scorer@production", "--input", str(tmp_path / "keys.parquet"),
                                      "--output", str(tmp_path / "scored.parquet")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scored = pq.read_table(tmp_path / "scored.parquet").to_pydict()
    # score = spend * 10 + clicks + spend / amount, with (clicks, spend) = (5, 2), (7, 4), (9, 8)
    assert scored["prediction"] == pytest.approx([20 + 5 + 0.5, 40 + 7 + 2.0, 80 + 9 + 8.0])
    assert scored["amount"] == [4.0, 2.0, 1.0]
    pq.write_table(pa.table({"user_id": [1]}), tmp_path / "no_amount.parquet")
    with pytest.raises(ForgeError, match="amount"):
        CliRunner().invoke(cli, ["predict", "scorer@production", "--input", str(tmp_path / "no_amount.parquet"),
                                 "--output", str(tmp_path / "x.parquet")], catch_exceptions=False)
