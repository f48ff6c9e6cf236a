"""The right to be forgotten: find a data subject in every store and erase them, with a record.

Places are the workspace's offline, online and vector stores (through their
:class:`forgeml.contracts.SubjectStore` methods) and every eraser a plugin registers through
``forgeml_register_erasers`` (prediction logs, dataset snapshots, run artifacts, ...). A place that
cannot erase is reported, and the erasure then fails rather than claim a subject is gone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.auth.service import resolve_workspace
from forgeml.contracts import Holding, Subject, SubjectStore
from forgeml.errors import ForgeError, ValidationError
from forgeml.features.definitions import NAME_RE

STORES = (("offline", "offline_store"), ("online", "online_store"), ("vector", "vector_store"))


@dataclass
class ForgetReport:
    """What ``forget`` found, erased or would erase for one subject, and the models to retrain."""

    column: str
    value: str
    dry_run: bool
    holdings: list[Holding] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    erasure: str | None = None
    unreachable: list[str] = field(default_factory=list)  # places that cannot find or erase a subject

    @property
    def rows(self) -> int:
        """Rows found (dry run) or removed."""
        return sum(h.rows for h in self.holdings)

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"subject": f"{self.column}={self.value}", "dry_run": self.dry_run, "rows": self.rows,
                "holdings": [asdict(h) for h in self.holdings], "models_to_retrain": self.models,
                "runs": self.runs, "erasure": self.erasure, "unreachable": self.unreachable}


def parse_subject(text: str) -> tuple[str, str]:
    """Split ``ENTITY=KEY`` (a join-key column and its value) into its two parts."""
    column, sep, value = str(text).partition("=")
    column = column.strip()
    if not sep or not value or not NAME_RE.match(column):
        raise ValidationError(f"subject {text!r} must be COLUMN=VALUE, e.g. user_id=42 (the entity's join key)")
    return column, value


def _views(workspace: Any) -> list[Any]:
    if not workspace.metadata.applied_migrations("features"):
        return []
    from forgeml.features.registry import FeatureRegistry

    return list(FeatureRegistry(workspace).load_all()[1].values())


def make_subject(workspace: Any, column: str, value: Any, erasure: str = "") -> Subject:
    """Return the Subject for a key column and value, with the online views that may hold it."""
    from forgeml.features.tiles import state_view

    views = {state_view(v.name) if v.windowed else v.name: v.join_keys for v in _views(workspace)
             if column in v.join_keys}
    return Subject(column, str(value), views, erasure)


def places(workspace: Any) -> tuple[list[tuple[str, SubjectStore]], list[str]]:
    """Return the places that keep subjects' data (stores, streams, registered erasers) and those that cannot erase.

    A place without ``find_subject``/``erase_subject`` (a Kafka topic, a third-party store) is named
    in the second list: forget erases everywhere else and reports the erasure as incomplete.
    """
    out: list[tuple[str, SubjectStore]] = []
    unreachable: list[str] = []
    # the vector store only ever holds the embedding features of views: without such a view it holds
    # nobody, and opening it (loading its engine) is skipped
    embeddings = any(v.embedding_features for v in _views(workspace))
    found: list[tuple[str, Any]] = [(name, getattr(workspace, attr)) for name, attr in STORES
                                    if name != "vector" or embeddings]
    found += [(f"stream:{name}", workspace.stream(name)) for name in sorted(workspace.config.streams())]
    for name, (factory, _plugin) in sorted(workspace.plugins.erasers().items()):
        found.append((name, factory(workspace)))
    for name, place in found:
        if isinstance(place, SubjectStore):
            out.append((name, place))
        else:
            unreachable.append(f"{name} ({type(place).__name__} cannot find or erase a data subject)")
    return out, unreachable


def find_subject(subject: str | tuple[str, Any], workspace: Any = None) -> ForgetReport:
    """Return where a subject's data lives, without changing anything."""
    ws = resolve_workspace(workspace)
    column, value = parse_subject(subject) if isinstance(subject, str) else subject
    target = make_subject(ws, column, value)
    report = ForgetReport(column, str(value), dry_run=True)
    reachable, report.unreachable = places(ws)
    for _, place in reachable:
        report.holdings += place.find_subject(target)
    report.holdings += rebuild_windows(ws, column, report.holdings, dry_run=True)
    report.models, report.runs = _trained_on(ws, report.holdings)
    return report


def forget(subjects: list[str] | str, dry_run: bool = False, workspace: Any = None) -> list[ForgetReport]:
    """Erase each ``COLUMN=VALUE`` subject from every place, or list what would change with dry_run."""
    from forgeml.auth.service import require

    ws = resolve_workspace(workspace)
    parsed = [parse_subject(s) for s in ([subjects] if isinstance(subjects, str) else subjects)]
    if not parsed:
        raise ValidationError("name at least one subject, e.g. forgeml forget user_id=42")
    if dry_run:
        return [find_subject(p, ws) for p in parsed]
    principal = require("privacy.forget", workspace=ws, subject="privacy/forget")
    reports = []
    for column, value in parsed:
        erasure = uuid.uuid4().hex[:16]
        target = make_subject(ws, column, value, erasure)
        report = ForgetReport(column, value, dry_run=False, erasure=erasure)
        reachable, report.unreachable = places(ws)
        for _, place in reachable:
            report.holdings += place.erase_subject(target)
        report.holdings += rebuild_windows(ws, column, report.holdings)
        report.models, report.runs = _trained_on(ws, report.holdings)
        _record(ws, report, principal.name)
        reports.append(report)
    return reports


def rebuild_windows(ws: Any, column: str, holdings: list[Holding], dry_run: bool = False) -> list[Holding]:
    """Rebuild the tiles of window views that aggregate the subject's column for other entities.

    A view keyed by another entity (a merchant's distinct users, say) folded the subject's events
    into other entities' tiles; once its offline events lost the subject's rows, its online tiles are
    recomputed from the events that remain, so no sum, count, distinct set or last-n list keeps them.
    """
    from forgeml.features import FeatureStore
    from forgeml.features.streaming import backfill

    erased = {h.location.split("/")[0]: h.rows for h in holdings if h.place == "offline"}
    views = [v for v in _views(ws) if v.windowed and v.name in erased and column not in v.join_keys
             and any(a.column == column for a in v.aggregations)]
    if not views:
        return []
    store = FeatureStore(ws)
    for view in views if not dry_run else ():
        backfill(store, view)
    how = "to rebuild from the remaining events" if dry_run else "rebuilt from the remaining events"
    return [Holding("window_tiles", f"{view.name} ({how})", erased[view.name])
            for view in views]


def verify_forgotten(subjects: list[str] | str, workspace: Any = None) -> list[ForgetReport]:
    """Search every place for each subject again; a report with holdings means data remains."""
    ws = resolve_workspace(workspace)
    return [find_subject(s, ws) for s in ([subjects] if isinstance(subjects, str) else subjects)]


def subject_token(workspace: Any, column: str, value: str) -> str:
    """Return the pseudonym an erasure record keeps instead of the subject's key."""
    from forgeml.pii.tokens import pii_key, pseudonym

    key = pii_key(workspace, required=False)
    if key is not None:
        return pseudonym(f"{column}={value}", key) or ""
    return "sha256_" + hashlib.sha256(f"{column}={value}".encode()).hexdigest()[:32]


def _record(ws: Any, report: ForgetReport, actor: str) -> None:
    import time

    from forgeml.auth.store import auth_db, write_access
    from forgeml.privacy.schema import insert_erasure

    assert report.erasure is not None
    token = subject_token(ws, report.column, report.value)
    insert_erasure(ws, report.erasure, actor, report.column, token,
                   [asdict(h) for h in report.holdings] + [{"unreachable": u} for u in report.unreachable],
                   report.models)
    write_access(auth_db(ws), [(time.time(), actor, "privacy.erasure", f"subject:{token}",
                                json.dumps({"erasure": report.erasure, "rows": report.rows,
                                            "places": sorted({h.place for h in report.holdings}),
                                            "unreachable": report.unreachable}))])


def _trained_on(ws: Any, holdings: list[Holding]) -> tuple[list[str], list[str]]:
    """Return the model versions and runs that read data of the holdings (to retrain without it)."""
    from forgeml.datasets.versions import lineage
    from forgeml.registry.store import all_versions

    models: set[str] = set()
    runs: set[str] = set()
    for h in holdings:
        if h.place == "datasets":
            try:
                lin = lineage(h.location.split(" ")[0], workspace=ws)
            except ForgeError:
                continue
            models.update(lin["models"])
            runs.update(r["run_id"] for r in lin["runs"])
    views = {h.location.split("/")[0].split("__")[0] for h in holdings if h.place in ("offline", "online", "vector")}
    if views and ws.metadata.applied_migrations("registry"):
        for row in all_versions(ws.metadata, "name", "version", "feature_views"):
            used = {str(v).split("@")[0].split(":")[0] for v in json.loads(row["feature_views"] or "[]")}
            if used & views:
                models.add(f"{row['name']}@{row['version']}")
    if runs and ws.metadata.applied_migrations("registry"):
        for row in all_versions(ws.metadata, "name", "version", "run_id"):
            if row["run_id"] in runs:
                models.add(f"{row['name']}@{row['version']}")
    return sorted(models), sorted(runs)
