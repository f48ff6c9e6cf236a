"""Embedding features: stored in the vector store by push, searched with nearest(), recall checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forgeml.errors import ValidationError

N, DIM, CLUSTERS = 100_000, 32, 300


@pytest.fixture
def item_store(workspace):
    from forgeml.features import Embedding, Entity, Feature, FeatureStore, FeatureView, PushSource

    item = Entity("item", join_keys=["item_id"])
    view = FeatureView("items", entities=[item], source=PushSource("items_push"),
                       features=[Feature("category", "int64"), Feature("emb", Embedding(DIM))])
    store = FeatureStore(workspace)
    store.apply([item, view])
    return store


def _vectors(n, seed=0):
    """Clustered vectors, the shape real embeddings have (topics, genres), deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32) * 3
    return (centers[rng.integers(0, CLUSTERS, n)] + rng.standard_normal((n, DIM)).astype(np.float32)), rng


def test_nearest_recall_at_10_on_100k_vectors(item_store):
    """An IVF index over 100,000 vectors finds at least 90% of the exact top 10, filters apply first."""
    import numpy as np
    import pyarrow as pa

    vectors, rng = _vectors(N)
    rows = pa.table({
        "item_id": np.arange(N, dtype=np.int64),
        "event_timestamp": pa.array(np.full(N, int(datetime.now(UTC).timestamp() * 1e6))).cast(
            pa.timestamp("us", tz="UTC")),
        "category": rng.integers(0, 5, N),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
    })
    # straight into the view's vector table: push's online JSON rows are covered by the test below
    item_store.vectors.upsert("items__emb", rows, "emb", ["item_id"])
    assert item_store.vectors.count("items__emb") == N
    queries = vectors[rng.integers(0, N, 30)] + 0.3 * rng.standard_normal((30, DIM)).astype(np.float32)
    hits = 0
    for q in queries:
        exact = set(np.argsort(((vectors - q) ** 2).sum(axis=1))[:10].tolist())
        found = item_store.nearest("items", q.tolist(), k=10)
        assert found.num_rows == 10 and "_distance" in found.column_names
        hits += len(exact & set(found.column("item_id").to_pylist()))
    assert hits / (10 * len(queries)) >= 0.9
    filtered = item_store.nearest("items", queries[0].tolist(), k=5, filter="category = 3")
    assert filtered.num_rows == 5 and set(filtered.column("category").to_pylist()) == {3}


def test_nearest_upserts_by_key_and_checks_the_query(item_store):
    """A second push of a key replaces its vector; a wrong dimension or a view without embeddings is refused."""
    import numpy as np
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    vectors, _ = _vectors(3, seed=1)
    item_store.push("items", pd.DataFrame({"item_id": [1, 2, 3], "event_timestamp": [now] * 3, "category": [0, 1, 2],
                                           "emb": list(vectors)}))
    moved = vectors[2] + 100
    item_store.push("items", pd.DataFrame({"item_id": [1], "event_timestamp": [now], "category": [0],
                                           "emb": [moved]}))
    assert item_store.vectors.count("items__emb") == 3
    top = item_store.nearest("items", moved.tolist(), k=1)
    assert top.column("item_id").to_pylist() == [1]
    with pytest.raises(ValidationError, match="has 4 dimensions"):
        item_store.nearest("items", [0.0] * 4)
    assert np.allclose(top.column("emb").to_pylist()[0], moved)
    online = item_store.get_online_features([{"item_id": 1}, {"item_id": 2}], ["items:emb"]).to_dict()["emb"]
    assert online == [moved.tolist(), vectors[1].tolist()]  # float32 values come back exactly


def test_a_users_own_datasets_module_does_not_break_the_vector_store(tmp_path):
    """A project package named ``datasets`` (not Hugging Face's) is loaded first; the store still opens and searches.

    Runs in a fresh interpreter: lancedb is imported once per process, and only the first import meets the module.
    """
    import subprocess
    import sys

    project = tmp_path / "project"
    (project / "datasets").mkdir(parents=True)
    (project / "datasets" / "__init__.py").write_text("LOADERS = ['clicks']\n")
    script = f"""
import sys
import datasets
import pyarrow as pa
from forgeml.storage.vectors import LanceDBVectorStore

store = LanceDBVectorStore({str(tmp_path / "vectors")!r})
rows = pa.table({{"k": [1, 2, 3], "v": pa.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], pa.list_(pa.float32(), 2))}})
store.upsert("items", rows, "v", ["k"])
store.upsert("items", rows.slice(0, 1), "v", ["k"])
assert store.count("items") == 3
assert store.search("items", [1.0, 0.0], 1).column("k").to_pylist() == [2]
assert sys.modules["datasets"] is datasets and datasets.LOADERS == ["clicks"]
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
