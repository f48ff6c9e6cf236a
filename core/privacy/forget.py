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
from forgeml.errors import ForgeError, StorageError, ValidationError
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

    @property
    def rows(self) -> int:
        """Rows found (dry run) or removed."""
        return sum(h.rows for h in self.holdings)

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"subject": f"{self.column}={self.value}", "dry_run": self.dry_run, "rows": self.rows,
                "holdings": [asdict(h) for h in self.holdings], "models_to_retrain": self.models,
                "runs": self.runs, "erasure": self.erasure}


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


def places(workspace: Any) -> list[tuple[str, SubjectStore]]:
    """Return every place that keeps subjects' data: the feature stores, then the registered erasers."""
    out: list[tuple[str, SubjectStore]] = []
    # the vector store only ever holds the embedding features of views: without such a view it holds
    # nobody, and opening it (loading its engine) is skipped
    embeddings = any(v.embedding_features for v in _views(workspace))
    for name, attr in STORES:
        if name == "vector" and not embeddings:
            continue
        store = getattr(workspace, attr)
        if not isinstance(store, SubjectStore):
            raise StorageError(f"the {name} store {type(store).__name__} cannot find or erase a data subject "
                               f"(it lacks find_subject/erase_subject), so forget cannot promise erasure")
        out.append((name, store))
    for name, (factory, plugin) in sorted(workspace.plugins.erasers().items()):
        eraser = factory(workspace)
        if not isinstance(eraser, SubjectStore):
            raise StorageError(f"eraser {name!r} of plugin {plugin!r} lacks find_subject/erase_subject")
        out.append((name, eraser))
    return out


def find_subject(subject: str | tuple[str, Any], workspace: Any = None) -> ForgetReport:
    """Return where a subject's data lives, without changing anything."""
    ws = resolve_workspace(workspace)
    column, value = parse_subject(subject) if isinstance(subject, str) else subject
    target = make_subject(ws, column, value)
    report = ForgetReport(column, str(value), dry_run=True)
    for _, place in places(ws):
        report.holdings += place.find_subject(target)
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
        for _, place in places(ws):
            report.holdings += place.erase_subject(target)
        report.models, report.runs = _trained_on(ws, report.holdings)
        _record(ws, report, principal.name)
        reports.append(report)
    return reports


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
    insert_erasure(ws, report.erasure, actor, report.column, token, [asdict(h) for h in report.holdings],
                   report.models)
    write_access(auth_db(ws), [(time.time(), actor, "privacy.erasure", f"subject:{token}",
                                json.dumps({"erasure": report.erasure, "rows": report.rows,
                                            "places": sorted({h.place for h in report.holdings})}))])


def _trained_on(ws: Any, holdings: list[Holding]) -> tuple[list[str], list[str]]:
    """Return the model versions and runs that read data of the holdings (to retrain without it)."""
    from forgeml.datasets.versions import lineage

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
        for row in ws.metadata.query("SELECT name, version, feature_views, run_id FROM registry_versions"):
            used = {str(v).split("@")[0].split(":")[0] for v in json.loads(row["feature_views"] or "[]")}
            if used & views:
                models.add(f"{row['name']}@{row['version']}")
    if runs and ws.metadata.applied_migrations("registry"):
        for row in ws.metadata.query("SELECT name, version, run_id FROM registry_versions"):
            if row["run_id"] in runs:
                models.add(f"{row['name']}@{row['version']}")
    return sorted(models), sorted(runs)
