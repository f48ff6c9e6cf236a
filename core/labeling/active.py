"""Active learning: ask people only about the items the current model is least sure of.

The query strategy is a plugin (layer ``query_strategies``); core scores the unlabelled pool with a
registered model, asks the strategy for indices, checks them, and sends those items, with the model's
guess as a pre-label, to the annotation backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import NotFoundError, PluginError, ValidationError
from forgeml.labeling import persistence as db
from forgeml.labeling.labelsets import get_label_set, workspace_or_current

# an item with one of these labels is no longer asked about
ANSWERED = ("annotator", "gold", "outcome")


@dataclass
class Batch:
    """The items a strategy chose: their keys, the model's guesses and what was sent where."""

    label_set: str
    strategy: str
    keys: list[str]
    predictions: list[str]
    scores: list[float]
    pool: int
    model: str | None = None
    sent: int = 0
    backend: str | None = None
    project: str | None = None
    tasks: list[Any] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"label_set": self.label_set, "strategy": self.strategy, "model": self.model, "pool": self.pool,
                "chosen": len(self.keys), "sent": self.sent, "backend": self.backend, "project": self.project,
                "items": [{"key": k, "prediction": p, "score": s}
                          for k, p, s in zip(self.keys, self.predictions, self.scores)]}


def strategy(name: str, workspace: Any = None) -> Any:
    """Build the query strategy a plugin registered under ``name``."""
    ws = workspace_or_current(workspace)
    provider = ws.plugins.provider("query_strategies", name, "--strategy")
    return provider.build(None, ws), provider


def choose(strategy_impl: Any, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0,
           label: str = "") -> list[int]:
    """Ask a strategy for n row indices and refuse an answer that is not min(n, rows) distinct indices in range."""
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValidationError(f"probabilities must be rows x classes (>= 2), got shape {probabilities.shape}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"the batch size must be a whole number >= 0, got {n!r}")
    rows = len(probabilities)
    picked = strategy_impl.select(probabilities, n, embeddings=embeddings, seed=seed)
    try:
        out = [int(i) for i in picked]
    except (TypeError, ValueError) as e:
        raise PluginError(f"query strategy {label or strategy_impl.name!r} returned {type(picked).__name__}, "
                          "not a sequence of row indices") from e
    wanted = min(n, rows)
    bad = [i for i in out if not 0 <= i < rows]
    if bad or len(set(out)) != len(out) or len(out) != wanted:
        raise PluginError(f"query strategy {label or strategy_impl.name!r} returned {len(out)} indices "
                          f"({len(set(out))} distinct, {len(bad)} out of range) for a batch of {wanted} from "
                          f"{rows} rows; nothing was sent")
    return out


def default_model(label_set: str, workspace: Any = None) -> str:
    """The model trained on this label set's training sets: its production version, else its newest staging one."""
    from forgeml.labeling.labelsets import lineage
    from forgeml.registry.models import list_versions

    ws = workspace_or_current(workspace)
    try:
        trained = {m for t in lineage(label_set, workspace=ws)["training_sets"] for m in t["models"]}
    except NotFoundError:
        trained = set()
    names = sorted({uri.rsplit("@", 1)[0] for uri in trained})
    for stage in ("production", "staging"):
        found = [v for name in names for v in list_versions(name, workspace=ws)
                 if v.stage.lower() == stage and v.uri in trained]
        if found:
            return max(found, key=lambda v: v.created_at).uri
    raise ValidationError(f"no production or staging model was trained on label set {label_set!r}'s training sets; "
                          "name one with --model NAME@VERSION")


def class_probabilities(predictor: Any, x: Any, classes: Sequence[str], label: str) -> Any:
    """The model's (rows x classes) probabilities; a binary model giving one probability column is widened."""
    import numpy as np

    if hasattr(predictor, "predict_proba"):
        proba = np.asarray(predictor.predict_proba(x), dtype=float)
    else:  # a model whose predict returns the positive class's probability (a torch module ending in a sigmoid)
        proba = np.asarray(predictor.predict(x), dtype=float)
    if len(classes) == 2 and (proba.ndim == 1 or proba.shape[1] == 1):
        p = proba.reshape(-1)
        proba = np.column_stack([1.0 - p, p])
    if proba.ndim != 2 or proba.shape[1] != len(classes) or not np.isfinite(proba).all():
        raise ValidationError(f"model {label} gave probabilities of shape {proba.shape} for the {len(classes)} classes "
                              f"{list(classes)}, or values that are not finite")
    return proba


def feature_table(table: Any, key: str, drop: Sequence[str] = ()) -> Any:
    """The columns a model scores: everything but the key, label columns and those named in ``drop``."""
    skip = {key, "label", "label_source", "label_confidence", *drop}
    return table.drop_columns([c for c in table.column_names if c in skip])


def next_batch(label_set: str, model: Any = None, *, strategy_name: str = "margin", n: int = 100, dataset: str | None = None,
               embeddings: str | None = None, drop: Sequence[str] = (), send: bool = True, seed: int = 0,
               gold: int = 0, workspace: Any = None) -> Batch:
    """Choose the next n items of the dataset to label with a strategy and a model; send them unless ``send=False``.

    Items already answered (by an annotator, gold or outcome) or already sent to the backend are left out.
    ``embeddings`` names a list-of-floats column for diversity-aware strategies. Without ``model``, the
    production (else newest staging) model trained on this label set's training sets scores the pool.
    ``gold`` items whose answer is known (source kind ``gold``) and not yet sent go along, without a
    pre-label and in shuffled order, so each annotator's accuracy can be measured on them.
    """
    import numpy as np

    from forgeml.datasets.versions import get_dataset_version, read_dataset
    from forgeml.evaluation.evaluate import load_for_evaluation

    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    dv = get_dataset_version(dataset or ls.dataset, workspace=ws)
    if dv.name != ls.dataset:
        raise ValidationError(f"label set {ls.name!r} labels {ls.dataset}, not {dv.ref}")
    impl, provider = strategy(strategy_name, workspace=ws)
    table = read_dataset(dv, workspace=ws)
    keys = [str(k) for k in table[ls.key].to_pylist()]
    done = db.labelled_keys(ws, ls.name, ANSWERED)
    from forgeml.labeling.annotate import backend

    # items waiting in the backend are left out of a dry run too, so it shows what a send would send
    done |= db.sent_keys(ws, ls.name, backend(ws).name)
    pool = np.array([i for i, k in enumerate(keys) if k not in done], dtype=np.int64)
    if len(pool) == 0:
        raise ValidationError(f"every item of {dv.ref} is labelled or waiting in the backend; nothing to ask")
    pool_table = table.take(pool)
    predictor, model_label, _ = load_for_evaluation(model or default_model(ls.name, ws), ws)
    x = feature_table(pool_table, ls.key, [*drop, *([embeddings] if embeddings else [])])
    proba = class_probabilities(predictor, x, ls.classes, model_label)
    if len(proba) != len(pool):
        raise ValidationError(f"model {model_label} gave {len(proba)} rows of probabilities for {len(pool)} items")
    emb = None
    if embeddings:
        if embeddings not in pool_table.column_names:
            raise ValidationError(f"{dv.ref} has no embeddings column {embeddings!r}")
        emb = np.asarray(pool_table[embeddings].to_pylist(), dtype=float)
    chosen = choose(impl, proba, n, emb, seed, provider.label)
    batch = Batch(ls.name, strategy_name, [keys[pool[i]] for i in chosen],
                  [ls.classes[int(proba[i].argmax())] for i in chosen], [float(proba[i].max()) for i in chosen],
                  len(pool), model_label)
    if send and batch.keys:
        import pyarrow as pa

        from forgeml.labeling.annotate import send_items

        rows = pool_table.take(np.asarray(chosen, dtype=np.int64))
        predictions: list[str | None] = list(batch.predictions)
        scores: list[float | None] = list(batch.scores)
        if gold:
            waiting = db.labelled_keys(ws, ls.name, ["gold"]) - db.sent_keys(ws, ls.name, backend(ws).name)
            gold_rows = [i for i, k in enumerate(keys) if k in waiting]
            gold_rows = sorted(np.random.default_rng(seed).permutation(gold_rows)[:gold].tolist())
            rows = pa.concat_tables([rows, table.take(np.asarray(gold_rows, dtype=np.int64))])
            predictions += [None] * len(gold_rows)
            scores += [None] * len(gold_rows)
            order = np.random.default_rng(seed).permutation(rows.num_rows)  # gold items hide among the others
            rows = rows.take(order)
            predictions, scores = [predictions[i] for i in order], [scores[i] for i in order]
        result = send_items(ls.name, rows, predictions=predictions, scores=scores, model=model_label,
                            strategy=strategy_name, workspace=ws)
        batch.sent, batch.backend, batch.project = result["sent"], result["backend"], result["project"]
    return batch
