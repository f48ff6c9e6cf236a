"""Item-embedding tables managed like models: built, verified, registered with the model that produced them.

An embedding table is a vector-store table with a fresh name; ``publish_embeddings`` builds it,
verifies it (row count, one dimension, no NaN, each probed vector finds itself) and only then
registers a version of the producing model whose tags name the table. Recommenders follow a model
URI (``two_tower@production``): promoting a version switches their ANN source to its table between
two requests (blue-green; the old table stays until pruned), and a registry rollback switches back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from forgeml.errors import ConfigError, ValidationError

TABLE_TAG, KEY_TAG, DIM_TAG, COLD_TAG = "embedding_table", "embedding_key", "embedding_dim", "embedding_cold_start"
USER_TABLE_TAG, USER_KEY_TAG = "embedding_user_table", "embedding_user_key"
VECTOR_COLUMN = "vector"


@dataclass(frozen=True)
class EmbeddingTable:
    """One registered embedding table: which model version made it and where its vectors live."""

    model: str
    version: int
    table: str
    key: str
    dim: int
    cold_start: list[float] | None = None
    user_table: str = ""
    user_key: str = ""

    def search(self, workspace: Any, vector: Sequence[float], k: int, filter: str | None = None) -> Any:
        """Return the k nearest rows (Arrow, with _distance)."""
        if len(vector) != self.dim:
            raise ValidationError(f"query vector has {len(vector)} dimensions, {self.model} v{self.version}'s "
                                  f"embedding table {self.dim}")
        return workspace.vector_store.search(self.table, list(vector), k, filter=filter, vector_column=VECTOR_COLUMN)

    def vectors(self, workspace: Any, items: Sequence[Any]) -> list[Any]:
        """Return each item's vector (None for items the table lacks), in the order given."""
        return _by_key(workspace, self.table, self.key, items)

    def user_vector(self, workspace: Any, user: Any) -> Any:
        """Return the user tower's vector of a user (None without a user table or for an unknown user)."""
        if not self.user_table or user is None:
            return None
        return _by_key(workspace, self.user_table, self.user_key, [user])[0]


@dataclass(frozen=True)
class VectorIndex:
    """Every vector of one embedding table in memory by key: a lookup is a dict access, not a table scan."""

    rows: dict[Any, int]
    matrix: Any
    """float32 array, one row per key."""
    keys: list[Any] = field(repr=False)
    """Every key, in row order."""
    squared_norms: Any = field(repr=False)
    """Each row's squared Euclidean norm (computed once, when loaded)."""
    key_type: Any = None
    """The Arrow type of the key column (rows appended later must match it)."""

    def get(self, keys: Sequence[Any]) -> list[Any]:
        """Return each key's vector as a list of floats (None for keys the table lacks), in the order given."""
        rows = self.rows
        return [None if (i := rows.get(k)) is None else self.matrix[i].tolist() for k in keys]

    def nearest(self, vector: Sequence[float], k: int, metric: str = "l2") -> tuple[list[Any], list[float]]:
        """Return the k keys nearest to vector and their distances (exact: every row is compared), nearest first."""
        import numpy as np

        q = np.asarray(vector, dtype=np.float32)
        if q.shape != (self.matrix.shape[1],):
            raise ValidationError(f"query vector has {q.size} dimensions, the table {self.matrix.shape[1]}")
        # einsum, not matmul: BLAS would start threads of its own that fight the server's for the cores
        dots = np.einsum("ij,j->i", self.matrix, q)
        if metric == "cosine":
            distances = 1.0 - dots / np.maximum(np.sqrt(self.squared_norms) * float(np.sqrt(q @ q)), 1e-12)
        elif metric == "dot":
            distances = 1.0 - dots
        else:  # squared euclidean, as the vector store reports it (in place: one pass less over every row)
            dots *= -2.0
            dots += self.squared_norms
            dots += float(q @ q)
            distances = dots
        k = min(k, len(distances))
        if k <= 0:
            return [], []
        head = smallest(distances, k)
        rows = head.tolist()
        keys = itemgetter(*rows)(self.keys) if k > 1 else (self.keys[rows[0]],)
        return list(keys), distances[head].tolist()


def smallest(values: Any, k: int, step: int = 64) -> Any:
    """Return the indices of the k smallest values, smallest first; exact, with a sampled pre-selection.

    A threshold taken from every ``step``-th value keeps a few times k candidates (one vectorised
    comparison), so the selection runs over those instead of every row: half the CPU of one
    argpartition over 100,000 values. When the threshold keeps fewer than k, every value is used.
    """
    import numpy as np

    n = len(values)
    if k >= n:
        return np.argsort(values, kind="stable")
    head = None
    if n >= 16 * step and k * 8 < n:
        sample = values[::step]
        m = min(len(sample) - 1, 2 * k // step + 8)
        kept = np.flatnonzero(values <= np.partition(sample, m)[m])
        if len(kept) >= k:  # every one of the k smallest is at most the threshold, so all are kept
            head = kept[np.argpartition(values[kept], k - 1)[:k]]
    if head is None:
        head = np.argpartition(values, k - 1)[:k]
    return head[np.argsort(values[head], kind="stable")]


def load_vectors(workspace: Any, table: str, key: str) -> VectorIndex:
    """Read a whole embedding table into memory (done once per table version, never per request)."""
    import numpy as np

    store = workspace.vector_store
    found = store.rows(table, f"{key} IS NOT NULL", max(1, store.count(table)))
    column = found.column(VECTOR_COLUMN).combine_chunks()
    dim = column.type.list_size
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    keys = found.column(key).to_pylist()
    return VectorIndex({k: i for i, k in enumerate(keys)}, matrix, keys, np.einsum("ij,ij->i", matrix, matrix),
                       found.schema.field(key).type)


def _by_key(workspace: Any, table: str, key: str, keys: Sequence[Any]) -> list[Any]:
    if not keys:
        return []
    predicate = f"{key} IN ({', '.join(sql_literal(k) for k in keys)})"
    found = workspace.vector_store.rows(table, predicate, len(keys))
    by_key = dict(zip(found.column(key).to_pylist(), found.column(VECTOR_COLUMN).to_pylist(), strict=True))
    return [by_key.get(k) for k in keys]


def sql_literal(value: Any) -> str:
    """Quote an item id for a LanceDB predicate; only whole numbers and text are ids."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"item ids must be whole numbers or text, got {type(value).__name__} {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def registered_table(uri: str, workspace: Any) -> EmbeddingTable:
    """Return the embedding table of the model version a URI points at now."""
    from forgeml.registry import resolve

    mv = resolve(uri, workspace=workspace)
    tags = mv.tags or {}
    if TABLE_TAG not in tags:
        raise ConfigError(f"{mv.name} v{mv.version} has no embedding table; register it with "
                          f"forgeml.recsys.publish_embeddings")
    cold = json.loads(tags[COLD_TAG]) if tags.get(COLD_TAG) else None
    return EmbeddingTable(str(mv.name), int(mv.version), tags[TABLE_TAG], tags[KEY_TAG], int(tags[DIM_TAG]), cold,
                          tags.get(USER_TABLE_TAG, ""), tags.get(USER_KEY_TAG, ""))


def publish_embeddings(name: str, model: Any, items: Sequence[Any], vectors: Any, key: str = "item_id",
                       users: Sequence[Any] | None = None, user_vectors: Any = None, user_key: str = "user_id",
                       flavor: str | None = None, metrics: dict[str, float] | None = None, probes: int = 5,
                       stage: str | None = None, workspace: Any = None) -> Any:
    """Build and verify a new embedding table, then register ``model`` as the next version of ``name`` naming it.

    ``users`` and ``user_vectors`` (the user tower's output) go to a table of their own, versioned
    with the items', so a request never pairs one version's user vector with another's items.
    ``stage`` ("PRODUCTION") promotes the new version at once, through its gates; recommenders
    following ``name@production`` switch to the new tables on their next registry poll.
    """
    import numpy as np
    import pyarrow as pa

    from forgeml.registry import promote, register_model
    from forgeml.registry.models import workspace_or_current

    ws = workspace_or_current(workspace)
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != len(items) or not len(items):
        raise ValidationError(f"publish_embeddings({name!r}): give one vector per item (got {len(items)} items and "
                              f"vectors shaped {matrix.shape})")
    dim = int(matrix.shape[1])
    if not np.isfinite(matrix).all():
        raise ValidationError(f"publish_embeddings({name!r}): a vector holds NaN or infinity")
    table = f"emb_{name}_{uuid.uuid4().hex[:10]}"
    data = pa.table({key: pa.array(list(items)),
                     VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)})
    store = ws.vector_store
    store.upsert(table, data, VECTOR_COLUMN, [key])
    built = EmbeddingTable(name, 0, table, key, dim)
    if store.count(table) != len(items):
        raise ValidationError(f"embedding table {table}: wrote {len(items)} rows, found {store.count(table)}")
    step = max(1, len(items) // max(probes, 1))
    for i in range(0, len(items), step)[:probes]:
        hit = built.search(ws, matrix[i].tolist(), 1).column(key).to_pylist()
        # a duplicate vector may legitimately come first; the probe must at least be at distance zero
        if hit != [items[i]] and built.vectors(ws, [hit[0]])[0] != matrix[i].tolist():
            raise ValidationError(f"embedding table {table}: item {items[i]!r} does not find itself; not published")
    cold = matrix.mean(axis=0).round(6).tolist()
    tags = {TABLE_TAG: table, KEY_TAG: key, DIM_TAG: str(dim), COLD_TAG: json.dumps(cold)}
    if users is not None:
        umatrix = np.asarray(user_vectors, dtype=np.float32)
        if umatrix.shape != (len(users), dim) or not np.isfinite(umatrix).all():
            raise ValidationError(f"publish_embeddings({name!r}): give one finite {dim}-dimensional user vector per "
                                  f"user (got {len(users)} users and vectors shaped {umatrix.shape})")
        user_table = f"{table}_users"
        store.upsert(user_table, pa.table({user_key: pa.array(list(users)), VECTOR_COLUMN: pa.FixedSizeListArray
                                           .from_arrays(pa.array(umatrix.reshape(-1)), dim)}), VECTOR_COLUMN,
                     [user_key])
        tags.update({USER_TABLE_TAG: user_table, USER_KEY_TAG: user_key})
    mv = register_model(name, model, flavor=flavor, metrics=metrics, tags=tags, workspace=ws)
    if stage:
        promote(name, mv.version, stage, reason=f"embedding table {table}", workspace=ws)
    return mv


def add_cold_items(uri: str, items: Sequence[Any], like: Mapping[Any, Sequence[Any]] | None = None,
                   workspace: Any = None) -> int:
    """Give new items (no interactions, so no trained vector) a cold-start vector in the table ``uri`` points at.

    A new item's vector is the mean of the vectors of the known items it is ``like`` (its category's
    items, its brand's: the caller's choice), else the table's cold-start vector (the mean item), so
    the ANN source retrieves it for the users near those items. Items the table already holds keep
    their vectors. Recommenders following ``uri`` search the new items from their next registry poll;
    the next published version should carry them (its model has then seen them or embeds their features).
    Returns how many items were added.
    """
    import numpy as np
    import pyarrow as pa

    from forgeml.registry.models import workspace_or_current

    ws = workspace_or_current(workspace)
    table = registered_table(uri, ws)
    for item in items:
        sql_literal(item)  # ids are whole numbers or text, as in every table
    known = load_vectors(ws, table.table, table.key)
    fresh = [item for item in dict.fromkeys(items) if item not in known.rows]
    if not fresh:
        return 0
    fallback = table.cold_start if table.cold_start is not None else known.matrix.mean(axis=0).tolist()
    vectors = []
    for item in fresh:
        near = [known.rows[i] for i in (like or {}).get(item, ()) if i in known.rows]
        vectors.append(known.matrix[near].mean(axis=0) if near else np.asarray(fallback, dtype=np.float32))
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(fresh), table.dim)
    data = pa.table({table.key: pa.array(fresh, known.key_type),
                     VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), table.dim)})
    ws.vector_store.upsert(table.table, data, VECTOR_COLUMN, [table.key])
    return len(fresh)

