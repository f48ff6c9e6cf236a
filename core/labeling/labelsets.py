"""Label sets: labels for a dataset's rows by key, each with its source, time and confidence.

A label set names a dataset, the column whose values identify its rows, and the classes. Labels
arrive from people (``annotator``), labelling functions (``function``) and the label model combining
them (``label_model``), model pre-labels (``model``), late outcomes such as chargebacks
(``outcome``) and known answers (``gold``). A snapshot freezes the records as a dataset version, and
a training set joins the resolved labels to the dataset's rows as an ordinary dataset version.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from forgeml.errors import ForgeError, NotFoundError, ValidationError, unknown_name
from forgeml.labeling import persistence as db

SOURCE_KINDS = ("annotator", "function", "label_model", "model", "outcome", "gold")
# when an item has labels of several kinds, the first kind here decides its training label
TRUST_ORDER = ("gold", "outcome", "annotator", "label_model", "function")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class LabelSet:
    """A named set of labels for the rows of one dataset, joined by a key column."""

    name: str
    dataset: str
    key: str
    classes: list[str]
    description: str = ""
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class LabelRecord:
    """One label of one item from one source."""

    key: str
    label: str
    source_kind: str
    source: str
    confidence: float | None
    labelled_at: float


@dataclass(frozen=True)
class ResolvedLabel:
    """The label an item trains with, and where it came from."""

    key: str
    label: str
    source_kind: str
    source: str
    confidence: float


def workspace_or_current(workspace: Any) -> Any:
    """Return the given workspace, or the current one."""
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def create_label_set(name: str, dataset: str, key: str, classes: Sequence[str], description: str = "",
                     workspace: Any = None) -> LabelSet:
    """Create a label set for a dataset's rows, identified by ``key``, labelled with one of ``classes``."""
    from forgeml.datasets.versions import get_dataset_version, parse_ref

    ws = workspace_or_current(workspace)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"invalid label set name {name!r}: use letters, digits, '_', '-' and '.'")
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes) or any(not c.strip() for c in classes):
        raise ValidationError(f"label set {name!r}: give at least two distinct, non-empty classes, got {classes}")
    dataset_name, _ = parse_ref(dataset)
    dv = get_dataset_version(dataset_name, workspace=ws)
    columns = [f["name"] for f in dv.schema]
    if key not in columns:
        raise unknown_name(f"key column of {dv.ref}", key, columns)
    if not db.insert_label_set(ws, name, dataset_name, key, classes, description):
        existing = get_label_set(name, workspace=ws)
        if (existing.dataset, existing.key, existing.classes) != (dataset_name, key, classes):
            raise ValidationError(f"label set {name!r} exists for {existing.dataset} by {existing.key!r} with classes "
                                  f"{existing.classes}; choose another name")
        return existing
    return get_label_set(name, workspace=ws)


def get_label_set(name: str, workspace: Any = None) -> LabelSet:
    """Return a label set by name."""
    ws = workspace_or_current(workspace)
    row = db.label_set_row(ws, name)
    if row is None:
        raise unknown_name("label set", name, db.label_set_names(ws))
    return LabelSet(row["name"], row["dataset"], row["key"], json.loads(row["classes"]), row["description"],
                    row["created_at"])


def list_label_sets(workspace: Any = None) -> list[dict[str, Any]]:
    """Return every label set with its counts of items and records."""
    rows = db.label_set_summaries(workspace_or_current(workspace))
    return [{**r, "classes": json.loads(r["classes"])} for r in rows]


def _check_record(ls: LabelSet, key: Any, label: Any, kind: str, source: str, confidence: Any) -> tuple[str, str, float | None]:
    if kind not in SOURCE_KINDS:
        raise unknown_name("label source kind", kind, SOURCE_KINDS)
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(f"label set {ls.name!r}: every label needs a source (an annotator, function or model)")
    if key is None or str(key) == "":
        raise ValidationError(f"label set {ls.name!r}: a label without an item key")
    label = str(label)
    if label not in ls.classes:
        raise ValidationError(f"label set {ls.name!r}: label {label!r} of item {key!r} is not one of {ls.classes}")
    if confidence is not None:
        confidence = float(confidence)
        if not (0.0 <= confidence <= 1.0):  # NaN fails this too
            raise ValidationError(f"label set {ls.name!r}: confidence {confidence} of item {key!r} is not in [0, 1]")
    return str(key), label, confidence


def add_labels(label_set: str, labels: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *, source_kind: str,
               source: str, confidence: float | Mapping[Any, float] | None = None, at: float | None = None,
               workspace: Any = None) -> int:
    """Record labels (key -> label) from one source; every label is checked before any is written."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    pairs = list(labels.items() if isinstance(labels, Mapping) else labels)
    at = time.time() if at is None else float(at)
    if not math.isfinite(at):
        raise ValidationError(f"label set {ls.name!r}: label time {at} is not a finite epoch time")
    rows = []
    for key, label in pairs:
        conf = confidence.get(key) if isinstance(confidence, Mapping) else confidence
        k, lab, c = _check_record(ls, key, label, source_kind, source, conf)
        rows.append((ls.name, k, lab, source_kind, source, c, at))
    return db.upsert_records(ws, rows)


def get_labels(label_set: str, kinds: Sequence[str] | None = None, workspace: Any = None) -> list[LabelRecord]:
    """Return a label set's records, oldest first, optionally only of some source kinds."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    for kind in kinds or ():
        if kind not in SOURCE_KINDS:
            raise unknown_name("label source kind", kind, SOURCE_KINDS)
    return [LabelRecord(*row) for row in db.records(ws, ls.name, kinds)]


def majority(votes: Sequence[str], weights: Sequence[float] | None = None) -> tuple[str, float]:
    """Return the (weighted) majority label and its share of the vote; ties go to the label seen first."""
    weights = list(weights) if weights is not None else [1.0] * len(votes)
    totals: dict[str, float] = defaultdict(float)
    for vote, w in zip(votes, weights):
        totals[vote] += w
    best = max(totals, key=lambda lab: (totals[lab], -votes.index(lab)))
    total = sum(totals.values())
    return best, (totals[best] / total if total > 0 else 1.0 / len(totals))


def resolve(records: Sequence[LabelRecord], annotator_weights: Mapping[str, float] | None = None,
            ) -> dict[str, ResolvedLabel]:
    """Choose each item's training label: the most trusted kind present, a (weighted) vote among annotators."""
    by_item: dict[str, dict[str, list[LabelRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_item[r.key][r.source_kind].append(r)
    out: dict[str, ResolvedLabel] = {}
    for key, kinds in by_item.items():
        for kind in TRUST_ORDER:
            found = kinds.get(kind)
            if not found:
                continue
            if kind == "annotator":
                weights = [annotator_weights.get(r.source, 1.0) for r in found] if annotator_weights else None
                label, share = majority([r.label for r in found], weights)
                sources = sorted({r.source for r in found if r.label == label})
                out[key] = ResolvedLabel(key, label, kind, ",".join(sources), share)
            else:
                latest = found[-1]
                conf = 1.0 if latest.confidence is None else latest.confidence
                out[key] = ResolvedLabel(key, latest.label, kind, latest.source, conf)
            break
    return out


def records_table(records: Sequence[LabelRecord]) -> Any:
    """Return label records as an Arrow table."""
    import pyarrow as pa

    return pa.table({
        "key": pa.array([r.key for r in records], pa.string()),
        "label": pa.array([r.label for r in records], pa.string()),
        "source_kind": pa.array([r.source_kind for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "confidence": pa.array([r.confidence for r in records], pa.float64()),
        "labelled_at": pa.array([r.labelled_at for r in records], pa.float64()),
    })


def snapshot(label_set: str, workspace: Any = None) -> Any:
    """Freeze a label set's records (key, label, source, time, confidence) as a version of dataset ``NAME.labels``."""
    from forgeml.datasets.versions import register_dataset

    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    recs = get_labels(ls.name, workspace=ws)
    if not recs:
        raise ValidationError(f"label set {ls.name!r} has no labels yet")
    return register_dataset(f"{ls.name}.labels", records_table(recs), workspace=ws,
                            description=f"labels of {ls.dataset} by {ls.key}",
                            tags={"kind": "label_set", "label_set": ls.name, "classes": json.dumps(ls.classes)})


def training_set(label_set: str, dataset: str | None = None, *, name: str | None = None, min_confidence: float = 0.0,
                 weighted: bool = False, workspace: Any = None) -> Any:
    """Join each labelled row of the dataset to its resolved label; register the rows as an ordinary dataset version.

    The new version carries ``label``, ``label_source`` and ``label_confidence`` columns and tags naming
    the label set's snapshot, so a model trained on it traces back to who labelled what.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.datasets.versions import get_dataset_version, parse_ref, read_dataset, register_dataset

    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    dv = get_dataset_version(dataset or ls.dataset, workspace=ws)
    if parse_ref(dv.ref)[0] != ls.dataset:
        raise ValidationError(f"label set {ls.name!r} labels {ls.dataset}, not {dv.ref}")
    labels_version = snapshot(ls.name, workspace=ws)
    weights = None
    if weighted:
        from forgeml.labeling.quality import annotator_weights

        weights = annotator_weights(ls.name, workspace=ws)
    resolved = {k: r for k, r in resolve(get_labels(ls.name, workspace=ws), weights).items()
                if r.confidence >= min_confidence}
    table = read_dataset(dv, workspace=ws)
    keys = [str(k) for k in table[ls.key].to_pylist()]
    mask = [k in resolved for k in keys]
    if not any(mask):
        raise ValidationError(f"no row of {dv.ref} has a label in {ls.name!r} (with confidence >= {min_confidence})")
    kept = table.filter(pa.array(mask))
    kept_keys = [k for k, m in zip(keys, mask) if m]
    for column in ("label", "label_source", "label_confidence"):
        if column in kept.column_names:
            kept = kept.drop_columns([column])
    kept = kept.append_column("label", pa.array([resolved[k].label for k in kept_keys], pa.string()))
    kept = kept.append_column("label_source", pa.array(
        [f"{resolved[k].source_kind}:{resolved[k].source}" for k in kept_keys], pa.string()))
    kept = kept.append_column("label_confidence", pc.cast(pa.array([resolved[k].confidence for k in kept_keys]),
                                                          pa.float64()))
    return register_dataset(name or f"{ls.name}.train", kept, workspace=ws,
                            description=f"{dv.ref} with labels from {labels_version.ref}",
                            tags={"kind": "training_set", "label_set": ls.name, "labels": labels_version.ref,
                                  "dataset": dv.ref})


def label_counts(label_set: str, workspace: Any = None) -> dict[str, Any]:
    """Return counts of records by source kind and of resolved labels by class."""
    ws = workspace_or_current(workspace)
    recs = get_labels(label_set, workspace=ws)
    resolved = resolve(recs)
    return {"label_set": label_set, "records": len(recs), "items": len({r.key for r in recs}),
            "by_kind": dict(Counter(r.source_kind for r in recs)),
            "by_class": dict(Counter(r.label for r in resolved.values()))}


def lineage(label_set: str, workspace: Any = None) -> dict[str, Any]:
    """Return the label set's snapshots, the training sets built from them and the models trained on those."""
    from forgeml.datasets.versions import lineage as dataset_lineage
    from forgeml.datasets.versions import list_versions

    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    try:
        snapshots = [v.ref for v in list_versions(f"{ls.name}.labels", workspace=ws)]
    except ForgeError:
        snapshots = []
    from forgeml.datasets.versions import list_datasets

    trained = []
    for entry in list_datasets(workspace=ws):
        for v in list_versions(entry["name"], workspace=ws):
            if v.tags.get("kind") == "training_set" and v.tags.get("label_set") == ls.name:
                used = dataset_lineage(v.ref, workspace=ws)
                trained.append({"training_set": v.ref, "labels": v.tags.get("labels"), "dataset": v.tags.get("dataset"),
                                "runs": [r["run_id"] for r in used["runs"]], "models": used["models"]})
    if not snapshots and not trained:
        raise NotFoundError(f"label set {ls.name!r} has no snapshot yet; run `forgeml label train {ls.name}`")
    return {"label_set": ls.name, "snapshots": snapshots, "training_sets": trained}


def add_labels_from(label_set: str, source: Any, *, source_kind: str, source_name: str, key: str | None = None,
                    label: str = "label", confidence: str | None = None, at: str | None = None,
                    workspace: Any = None) -> int:
    """Record labels from a file or table (key, label and optional confidence and epoch-seconds time columns)."""
    from forgeml.datasets.sources import load_source

    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    table = load_source(source, root=ws.root).table
    key = key or ls.key
    for column in (key, label, confidence, at):
        if column is not None and column not in table.column_names:
            raise unknown_name("column", column, table.column_names)
    keys, labels = table[key].to_pylist(), table[label].to_pylist()
    confs = table[confidence].to_pylist() if confidence else None
    times = table[at].to_pylist() if at else None
    if times is None:
        return add_labels(ls.name, list(zip(keys, labels)), source_kind=source_kind, source=source_name,
                          confidence=dict(zip(keys, confs)) if confs else None, workspace=ws)
    written = 0
    for i, (k, lab) in enumerate(zip(keys, labels)):
        written += add_labels(ls.name, [(k, lab)], source_kind=source_kind, source=source_name,
                              confidence=confs[i] if confs else None, at=times[i], workspace=ws)
    return written
