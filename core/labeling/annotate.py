"""Sending items to an annotation backend and bringing people's labels back into the label set."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from forgeml.contracts import Annotation, AnnotationTask
from forgeml.errors import PluginError, ValidationError
from forgeml.labeling import persistence as db
from forgeml.labeling.labelsets import LabelSet, get_label_set, workspace_or_current


def backend(workspace: Any = None) -> Any:
    """Return the annotation backend plugins.toml's ``[labeling.backend]`` chooses (``local`` by default)."""
    return workspace_or_current(workspace).open_layer("annotation_backends")


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)  # dates, decimals, lists: shown to people as text


def ensure_project(ls: LabelSet, fields: Sequence[str], workspace: Any = None) -> tuple[Any, str]:
    """Return the backend and the project of a label set there, creating the project on first use."""
    ws = workspace_or_current(workspace)
    impl = backend(ws)
    found = db.project(ws, ls.name, impl.name)
    if found is not None:
        return impl, found["project"]
    project = impl.create_project(ls.name, ls.classes, list(fields), instructions=ls.description)
    if not isinstance(project, str) or not project:
        raise PluginError(f"annotation backend {impl.name!r} returned project id {project!r}, not text")
    db.save_project(ws, ls.name, impl.name, project)
    return impl, db.project(ws, ls.name, impl.name)["project"]


def send_items(label_set: str, rows: Any, *, predictions: Sequence[str | None] | None = None,
               scores: Sequence[float | None] | None = None, model: str | None = None, strategy: str = "manual",
               workspace: Any = None) -> dict[str, Any]:
    """Send dataset rows (an Arrow table holding the key column) as tasks, with pre-labels where given."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    if ls.key not in rows.column_names:
        raise ValidationError(f"rows to label need the key column {ls.key!r}")
    fields = [c for c in rows.column_names if c != ls.key]
    impl, project = ensure_project(ls, fields, ws)
    keys = [str(k) for k in rows[ls.key].to_pylist()]
    records = rows.to_pylist()
    tasks = []
    for i, (key, record) in enumerate(zip(keys, records)):
        prediction = predictions[i] if predictions is not None else None
        if prediction is not None and prediction not in ls.classes:
            raise ValidationError(f"pre-label {prediction!r} of item {key!r} is not one of {ls.classes}")
        tasks.append(AnnotationTask(key, {f: _cell(record[f]) for f in fields}, prediction,
                                    scores[i] if scores is not None else None, model))
    sent = impl.send_tasks(project, tasks)
    db.mark_sent(ws, ls.name, impl.name, strategy, keys)
    return {"label_set": ls.name, "backend": impl.name, "project": project, "sent": int(sent), "items": len(keys)}


def pull(label_set: str, workspace: Any = None) -> dict[str, Any]:
    """Bring annotations made since the last pull into the label set; a repeated pull adds nothing twice."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    impl = backend(ws)
    found = db.project(ws, ls.name, impl.name)
    if found is None:
        raise ValidationError(f"label set {ls.name!r} has no project in backend {impl.name!r} yet; "
                              f"send items first with `forgeml label next {ls.name}` or `forgeml label send`")
    annotations, cursor = impl.pull(found["project"], found["cursor"])
    rows, skipped = [], []
    for a in annotations:
        if not isinstance(a, Annotation):
            raise PluginError(f"annotation backend {impl.name!r} returned {type(a).__name__}, not an Annotation")
        if a.label not in ls.classes or not a.annotator or not math.isfinite(a.at):
            skipped.append(a.key)
            continue
        rows.append((ls.name, str(a.key), a.label, "annotator", a.annotator, None, float(a.at)))
    written = db.save_pull(ws, ls.name, impl.name, cursor, rows)
    return {"label_set": ls.name, "backend": impl.name, "project": found["project"], "annotations": len(rows),
            "written": written, "skipped": skipped, "cursor": cursor}


def _interactive(ws: Any, ls: LabelSet) -> tuple[Any, str]:
    impl = backend(ws)
    if not (hasattr(impl, "pending") and hasattr(impl, "annotate")):
        raise ValidationError(f"annotation backend {impl.name!r} has its own labelling interface; "
                              "label there and run `forgeml label pull`")
    found = db.project(ws, ls.name, impl.name)
    if found is None:
        raise ValidationError(f"label set {ls.name!r} has no tasks yet; send some with `forgeml label next`")
    return impl, found["project"]


def pending(label_set: str, annotator: str, limit: int = 50, workspace: Any = None) -> list[AnnotationTask]:
    """Tasks of a label set the annotator has not labelled yet, from a backend that labels here (local)."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    impl, project = _interactive(ws, ls)
    return list(impl.pending(project, annotator, limit))


def answer(label_set: str, key: str, label: str, annotator: str, workspace: Any = None) -> None:
    """Record one person's label for one task in a backend that labels here (local)."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    if label not in ls.classes:
        raise ValidationError(f"label {label!r} is not one of {ls.classes}")
    if not annotator or not annotator.strip():
        raise ValidationError("say who is labelling (an annotator name)")
    impl, project = _interactive(ws, ls)
    impl.annotate(project, key, label, annotator)


def label_here(label_set: str, key: str, label: str, annotator: str, workspace: Any = None) -> dict[str, Any]:
    """Record one person's label in a backend that labels here and bring it into the label set at once."""
    ws = workspace_or_current(workspace)
    answer(label_set, key, label, annotator, workspace=ws)
    return pull(label_set, workspace=ws)


def queue(label_set: str, annotator: str, limit: int = 50, workspace: Any = None) -> dict[str, Any]:
    """What a labelling screen shows: the label set's classes and the annotator's pending tasks."""
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    tasks = pending(ls.name, annotator, limit, workspace=ws)
    return {"label_set": ls.name, "classes": ls.classes, "instructions": ls.description,
            "tasks": [{"key": t.key, "data": t.data, "prediction": t.prediction, "score": t.score, "model": t.model}
                      for t in tasks]}
