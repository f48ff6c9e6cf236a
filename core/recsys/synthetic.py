"""A synthetic shop for the recsys quickstart, tests and benchmark: catalogue, users, interactions, views, models.

Items belong to categories whose centres are random points; an item's latent vector is its
centre plus noise. Each user favours two categories and interacts mostly with popular items of
them, so co-occurrence, popularity, content and nearest neighbours each carry real signal, and the
last interactions of each user are held out for offline evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

RANK_FEATURES = ["users:fav_category", "users:second_category", "users:activity", "items:category", "items:price",
                 "items:popularity"]
RANK_INPUTS = ["fav_category", "second_category", "activity", "category", "price", "popularity", "hour"]


@dataclass
class SyntheticShop:
    """Everything generated: Arrow tables of items, users and interactions, and the latent vectors."""

    items: Any
    users: Any
    train: Any
    test: Any
    item_vectors: Any
    user_vectors: Any
    n_categories: int


def make_shop(n_items: int = 2000, n_users: int = 300, n_categories: int = 20, per_user: int = 20, held_out: int = 3,
              dim: int = 16, seed: int = 0, now: float | None = None) -> SyntheticShop:
    """Generate a deterministic shop; the last ``held_out`` interactions of each user form the test set."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    now = time.time() if now is None else now
    centres = rng.standard_normal((n_categories, dim)).astype(np.float32) * 2
    category = rng.integers(0, n_categories, n_items)
    item_vectors = centres[category] + 0.6 * rng.standard_normal((n_items, dim)).astype(np.float32)
    appeal = 1.0 / (1 + rng.permutation(n_items)) ** 0.7
    by_category = [np.flatnonzero(category == c) for c in range(n_categories)]
    fav = rng.integers(0, n_categories, n_users)
    second = (fav + rng.integers(1, n_categories, n_users)) % n_categories
    user_vectors = 0.7 * centres[fav] + 0.3 * centres[second] + 0.3 * rng.standard_normal((n_users, dim))
    pools = [*by_category, np.arange(n_items)]
    cdfs = [np.cumsum(appeal[p]) / appeal[p].sum() if len(p) else np.ones(0) for p in pools]

    def draw(pool: int, size: int) -> Any:
        if not len(pools[pool]):
            pool = n_categories
        picks = np.minimum(np.searchsorted(cdfs[pool], rng.random(size)), len(pools[pool]) - 1)
        return pools[pool][picks]

    users, items, stamps = [], [], []
    for u in range(n_users):
        start = now - 30 * 86400 + rng.uniform(0, 86400)
        roll = rng.random(per_user * 3)
        drawn = np.empty(len(roll), dtype=np.int64)
        for pool, mask in ((fav[u], roll < 0.6), (second[u], (roll >= 0.6) & (roll < 0.85)),
                           (n_categories, roll >= 0.85)):
            drawn[mask] = draw(int(pool), int(mask.sum()))
        _, first = np.unique(drawn, return_index=True)
        chosen = drawn[np.sort(first)][:per_user]
        while len(chosen) < per_user:  # a tiny catalogue: top up with any unseen items
            extra = draw(n_categories, per_user)
            chosen = np.concatenate([chosen, extra[~np.isin(extra, chosen)]])
            chosen = chosen[np.sort(np.unique(chosen, return_index=True)[1])][:per_user]
        users.extend([u] * per_user)
        items.extend(chosen.tolist())
        stamps.extend((start + 3600.0 * np.arange(1, per_user + 1)).tolist())
    log = pa.table({"user": np.asarray(users, np.int64), "item": np.asarray(items, np.int64),
                    "ts": pa.array((np.asarray(stamps) * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC"))})
    position = np.tile(np.arange(per_user), n_users)
    train = log.filter(pa.array(position < per_user - held_out))
    test = log.filter(pa.array(position >= per_user - held_out))
    counts = np.bincount(train.column("item").to_numpy(), minlength=n_items).astype(np.float64)
    items_table = pa.table({
        "item_id": np.arange(n_items, dtype=np.int64), "category": category.astype(np.int64),
        "price": rng.gamma(2.0, 20.0, n_items).round(2), "popularity": counts,
        "sponsored": rng.random(n_items) < 0.05, "created_at": now - rng.uniform(0, 60 * 86400, n_items),
        "available": rng.random(n_items) < 0.97,
    })
    users_table = pa.table({"user_id": np.arange(n_users, dtype=np.int64), "fav_category": fav.astype(np.int64),
                            "second_category": second.astype(np.int64),
                            "activity": rng.gamma(2.0, 1.0, n_users).round(3)})
    return SyntheticShop(items_table, users_table, train, test, item_vectors, user_vectors.astype(np.float32),
                         n_categories)


def define_views(store: Any, dim: int) -> None:
    """Register the shop's entities and push-fed feature views."""
    from forgeml.features import Embedding, Entity, Feature, FeatureView, PushSource

    user = Entity("user", join_keys=["user_id"])
    item = Entity("item", join_keys=["item_id"])
    segment = Entity("segment", join_keys=["segment"])
    category = Entity("category", join_keys=["category_id"])

    def view(name: str, entity: Any, *features: Any) -> Any:
        return FeatureView(name, entities=[entity], source=PushSource(f"{name}_push"), features=list(features))

    store.apply([user, item, segment, category,
                 view("item_emb", item, Feature("vector", Embedding(dim))),
                 view("user_emb", user, Feature("vector", Embedding(dim))),
                 view("items", item, Feature("category", "int64"), Feature("price"), Feature("popularity"),
                      Feature("sponsored", "bool"), Feature("created_at"), Feature("available", "bool")),
                 view("users", user, Feature("fav_category", "int64"), Feature("second_category", "int64"),
                      Feature("activity")),
                 view("user_history", user, Feature("recent", "list[int64]"), Feature("purchased", "list[int64]")),
                 view("item_cooc", item, Feature("also_bought", "list[int64]")),
                 view("popular", segment, Feature("top_items", "list[int64]")),
                 view("category_top", category, Feature("category_items", "list[int64]"))])


def _stamped(table: Any) -> Any:
    import pyarrow as pa

    stamp = pa.scalar(int((time.time() - 60) * 1e6), pa.timestamp("us", tz="UTC"))
    return table.append_column("event_timestamp", pa.array([stamp.value] * table.num_rows,
                                                            pa.timestamp("us", tz="UTC")))


def push_shop(store: Any, shop: SyntheticShop) -> None:
    """Push the shop's features, embeddings and precomputed lists to the online (and vector) store."""
    import pyarrow as pa

    from forgeml.recsys.lists import cooccurrence_lists, popularity_list, top_by_value

    dim = shop.item_vectors.shape[1]

    def vectors(keys: Any, matrix: Any) -> Any:
        return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)

    n_items, n_users = shop.items.num_rows, shop.users.num_rows
    store.push("item_emb", _stamped(pa.table({"item_id": shop.items.column("item_id"),
                                              "vector": vectors(n_items, shop.item_vectors)})), to="online")
    store.push("user_emb", _stamped(pa.table({"user_id": shop.users.column("user_id"),
                                              "vector": vectors(n_users, shop.user_vectors)})), to="online")
    store.push("items", _stamped(shop.items), to="online")
    store.push("users", _stamped(shop.users), to="online")
    history = shop.train.group_by("user").aggregate([("item", "list")]).sort_by("user")
    recent = [list(reversed(v)) for v in history.column("item_list").to_pylist()]
    store.push("user_history", _stamped(pa.table({"user_id": history.column("user"),
                                                  "recent": pa.array([r[:10] for r in recent], pa.list_(pa.int64())),
                                                  "purchased": pa.array(recent, pa.list_(pa.int64()))})), to="online")
    store.push("item_cooc", _stamped(cooccurrence_lists(shop.train)), to="online")
    store.push("popular", _stamped(popularity_list(shop.train)), to="online")
    store.push("category_top", _stamped(top_by_value(shop.items, "category", "popularity")), to="online")


def match_features(x: Any) -> Any:
    """Append whether the item is in the user's first and second category (columns in RANK_INPUTS order)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x, x[:, 0] == x[:, 3], x[:, 1] == x[:, 3]])


def training_rows(shop: SyntheticShop, negatives: int = 3, seed: int = 1) -> tuple[Any, Any]:
    """Return (features in RANK_INPUTS order as a DataFrame, labels): each interaction and sampled non-interactions."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    users = shop.train.column("user").to_numpy()
    pos_items = shop.train.column("item").to_numpy()
    neg_users = np.repeat(users, negatives)
    neg_items = rng.integers(0, shop.items.num_rows, len(neg_users))
    all_users = np.concatenate([users, neg_users])
    all_items = np.concatenate([pos_items, neg_items])
    u = shop.users.to_pandas().set_index("user_id").loc[all_users]
    i = shop.items.to_pandas().set_index("item_id").loc[all_items]
    frame = pd.DataFrame({"fav_category": u["fav_category"].to_numpy(), "second_category": u["second_category"].to_numpy(),
                          "activity": u["activity"].to_numpy(), "category": i["category"].to_numpy(),
                          "price": i["price"].to_numpy(), "popularity": i["popularity"].to_numpy(),
                          "hour": rng.integers(0, 24, len(all_users))}).astype("float64")
    labels = np.concatenate([np.ones(len(users)), np.zeros(len(neg_users))])
    return frame[RANK_INPUTS], labels


def train_ranker(shop: SyntheticShop, name: str = "ranker", workspace: Any = None) -> Any:
    """Train a gradient-boosted ranking model on the shop's interactions, register it and promote it."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from forgeml.registry import promote, register_model

    x, y = training_rows(shop)
    # plain gradient boosting runs on one core: the training time does not depend on other processes' load
    model = make_pipeline(FunctionTransformer(match_features),
                          GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)).fit(x, y)
    mv = register_model(name, model, flavor="sklearn", input_example=x.head(5), feature_views=RANK_FEATURES,
                        entity_keys=["user_id", "item_id"], workspace=workspace)
    promote(name, mv.version, "production", reason="trained on the synthetic shop", workspace=workspace)
    return mv


def train_retrieval(shop: SyntheticShop, name: str = "two_tower", dim: int = 32, epochs: int = 4, seed: int = 0,
                    stage: str | None = "production", workspace: Any = None) -> tuple[Any, Any]:
    """Train the two-tower model on the shop, publish its item and user tables, register (and promote) it."""
    from forgeml.recsys.embeddings import publish_embeddings
    from forgeml.recsys.two_tower import tower_outputs, train_two_tower

    model = train_two_tower(shop.train.column("user").to_numpy(), shop.train.column("item").to_numpy(),
                            shop.users.num_rows, shop.items.num_rows, shop.items.column("category").to_numpy(),
                            dim=dim, epochs=epochs, seed=seed)
    user_vectors, item_vectors = tower_outputs(model)
    mv = publish_embeddings(name, model, shop.items.column("item_id").to_pylist(), item_vectors,
                            users=shop.users.column("user_id").to_pylist(), user_vectors=user_vectors,
                            flavor="torch", stage=stage, workspace=workspace)
    return mv, model


RECOMMENDER_TOML = """
[serving.recommenders.{name}]
model = "{model}@production"
budget_ms = {budget_ms}
features = ["items:category", "items:sponsored", "items:created_at"]
available = "items:available"
recent = "user_history:recent"
sources = [
  {{ {ann}, k = 200 }},
  {{ source = "cooccurrence", feature = "item_cooc:also_bought", k = 150 }},
  {{ source = "popularity", feature = "popular:top_items", k = 100 }},
  {{ source = "content", attribute = "items:category", by_value = "category_top:category_items", k = 100 }},
]
rerank = [
  {{ rule = "suppress_purchased", feature = "user_history:purchased" }},
  {{ rule = "freshness", attribute = "created_at", weight = 0.02 }},
  {{ rule = "diversity", attribute = "category", max_per_value = 4 }},
  {{ rule = "sponsored", attribute = "sponsored", slots = [3] }},
]
"""


TWO_TOWER_TOML = """
[serving.recommenders.{name}]
model = "{model}@production"
budget_ms = {budget_ms}
sources = [
  {{ source = "ann", model = "{retrieval}@production", k = 300 }},
  {{ source = "popularity", feature = "popular:top_items", k = 100 }},
]
"""


def recommender_toml(name: str = "shop", model: str = "ranker", budget_ms: float = 40.0, retrieval: str = "",
                     every_source: bool = False) -> str:
    """Return the [serving.recommenders.NAME] table serving the shop (appended to plugins.toml).

    With ``retrieval`` (a two-tower model name) the ANN source follows that model's published
    embedding tables: alone with popularity, or with ``every_source`` beside all the built-in sources
    and rules. Without it the ANN source searches the item_emb view with the user_emb vectors.
    """
    if retrieval and not every_source:
        return TWO_TOWER_TOML.format(name=name, model=model, budget_ms=budget_ms, retrieval=retrieval)
    ann = (f'source = "ann", model = "{retrieval}@production"' if retrieval
           else 'source = "ann", view = "item_emb", user_vector = "user_emb:vector"')
    return RECOMMENDER_TOML.format(name=name, model=model, budget_ms=budget_ms, ann=ann)
