"""The feature registry: versioned definitions, diffs, lineage, and loading definitions from Python files."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError, ValidationError, unknown_name
from forgeml.features import store as persisted
from forgeml.features.aggregations import Aggregation
from forgeml.features.definitions import (
    Entity,
    Feature,
    FeatureView,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
    Transformation,
    source_from_spec,
)
from forgeml.features.schema import MIGRATION_SET, MIGRATIONS

KINDS = {"entity": Entity, "view": FeatureView, "on_demand_view": OnDemandFeatureView}
Definition = Entity | FeatureView | OnDemandFeatureView


def kind_of(obj: Any) -> str:
    """Return the registry kind of a definition object."""
    for kind, cls in KINDS.items():
        if isinstance(obj, cls):
            return kind
    raise ValidationError(f"cannot apply a {type(obj).__name__}; apply Entity, FeatureView or OnDemandFeatureView")


def fingerprint(spec: dict[str, Any]) -> str:
    """Return a stable digest of a spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass
class Change:
    """What apply did (or would do) to one object."""

    kind: str
    name: str
    action: str  # created, unchanged, updated, new_version
    version: int
    reasons: list[str] = field(default_factory=list)


def _with_entities(objects: list[Definition]) -> list[Definition]:
    """Put each view's entities first (once), so applying a view alone also registers its entities."""
    for obj in objects:
        kind_of(obj)
    named = {o.name for o in objects if isinstance(o, Entity)}
    extra: list[Definition] = []
    for obj in objects:
        if isinstance(obj, FeatureView):
            for entity in obj.entities:
                if entity.name not in named:
                    named.add(entity.name)
                    extra.append(entity)
    ordered = [o for o in objects if isinstance(o, Entity)] + extra
    return ordered + [o for o in objects if not isinstance(o, Entity)]


def breaking_changes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return why new cannot replace old in place (empty when the change is compatible)."""
    reasons = []
    if kind == "entity":
        if old["join_keys"] != new["join_keys"]:
            reasons.append(f"join keys changed {old['join_keys']} -> {new['join_keys']}")
        if old["dtype"] != new["dtype"]:
            reasons.append(f"key dtype changed {old['dtype']} -> {new['dtype']}")
        return reasons
    old_f = {f["name"]: f["dtype"] for f in old["features"]}
    new_f = {f["name"]: f["dtype"] for f in new["features"]}
    for name, dtype in old_f.items():
        if name not in new_f:
            reasons.append(f"feature {name!r} removed")
        elif new_f[name] != dtype:
            reasons.append(f"feature {name!r} dtype changed {dtype} -> {new_f[name]}")
    if kind == "view":
        if old["entities"] != new["entities"]:
            reasons.append(f"entities changed {old['entities']} -> {new['entities']}")
        if old["transformation"] != new["transformation"]:
            reasons.append("transformation changed")
        if old.get("aggregations") != new.get("aggregations"):
            reasons.append("aggregations changed (online window state is rebuilt by a backfill)")
    elif old["transformation"] != new["transformation"]:
        reasons.append("transformation changed")
    return reasons


def compatible_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return the fields that changed between two specs."""
    return [f"{key} changed" if key in old else f"{key} added" for key in sorted(new)
            if old.get(key) != new.get(key)]


# ---------------------------------------------------------------- definitions files
def load_definitions(target: str | Path, base: Path | None = None) -> list[Definition]:
    """Import a Python file or module and return the entities and views it defines at module level."""
    text = str(target)
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    if text.endswith(".py") or path.exists():
        if not path.exists():
            raise NotFoundError(f"feature definitions file {str(path)!r} does not exist; write one or give its path")
        module = _load_file(path)
    else:
        try:
            module = importlib.import_module(text)
        except (ImportError, TypeError, ValueError) as e:  # TypeError/ValueError: not a module name at all
            raise NotFoundError(f"cannot import feature definitions module {text!r}: {e}") from e
    found: list[Definition] = []
    for value in vars(module).values():
        if isinstance(value, Entity | FeatureView | OnDemandFeatureView) and not any(value is f for f in found):
            found.append(value)
    if not found:
        raise ValidationError(f"{text}: defines no Entity, FeatureView or OnDemandFeatureView at module level")
    return found


_loaded_files: dict[str, Any] = {}


def _load_file(path: Path) -> Any:
    path = path.resolve()
    name = f"forgeml_definitions_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot import {str(path)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded_files[str(path)] = module
    return module


def resolve_function(ref: dict[str, Any]) -> Any:
    """Import the Python function a registry reference names (or take it from this process's cache)."""
    from forgeml.features.definitions import FUNCTIONS, function_key

    cached = FUNCTIONS.get(function_key(ref))
    if cached is not None:
        return cached
    module = None
    if ref.get("file"):
        module = _loaded_files.get(str(Path(ref["file"]).resolve())) or sys.modules.get(ref["module"])
        if module is None:
            module = _load_file(Path(ref["file"]))
    else:
        try:
            module = importlib.import_module(ref["module"])
        except ImportError as e:
            raise NotFoundError(f"transformation {ref['module']}.{ref['qualname']} cannot be imported: {e}") from e
    value: Any = module
    for part in ref["qualname"].split("."):
        value = getattr(value, part, None)
        if value is None:
            raise NotFoundError(f"transformation {ref['module']}.{ref['qualname']} no longer exists; "
                                f"re-apply the feature definitions")
    return value


def _transformation_from_spec(spec: dict[str, Any] | None) -> Transformation | None:
    if spec is None:
        return None
    if "sql" in spec:
        return Transformation(sql=spec["sql"])
    ref = spec["python"]
    return Transformation(mode=spec.get("mode", "pandas"), ref=ref)  # imported on first use


# ---------------------------------------------------------------- the registry
class FeatureRegistry:
    """Definitions stored in the metadata store, versioned; plus lineage edges anyone can append."""

    def __init__(self, workspace: Any):
        self.workspace = workspace
        self.store = workspace.metadata_for(MIGRATION_SET, MIGRATIONS)

    # ------------------------------------------------------------ apply and diff
    def plan(self, objects: list[Definition]) -> list[Change]:
        """Return what apply would do, without changing anything."""
        return self._apply(objects, dry_run=True)

    def apply(self, objects: list[Definition]) -> list[Change]:
        """Register definitions: new objects get version 1, breaking changes a new version."""
        changes = self._apply(objects, dry_run=False)
        self._publish_pii()
        return changes

    def _publish_pii(self) -> None:
        """Tell the kernel which columns the current definitions tag PII (logs and artifacts keep them out)."""
        from forgeml.pii.tags import publish_pii

        _, views, odfvs = self.load_all()
        names = {c for v in views.values() for c in v.pii_columns}
        for odfv in odfvs.values():
            names.update(f.name for f in odfv.features if f.pii)
            names.update(f.name for s in odfv.sources if isinstance(s, RequestSource) for f in s.schema if f.pii)
        with self.store.transaction() as tx:
            publish_pii(tx, "features", names)

    def _apply(self, objects: list[Definition], dry_run: bool) -> list[Change]:
        objects = _with_entities(objects)
        self._check_references(objects)
        changes: list[Change] = []
        now = time.time()
        with self.store.transaction() as tx:
            for obj in objects:
                kind, spec = kind_of(obj), obj.to_spec()
                digest = fingerprint(spec)
                held = persisted.latest_object(tx, kind, obj.name)
                if held is None:
                    change = Change(kind, obj.name, "created", 1)
                else:
                    old = json.loads(held["spec"])
                    version = held["version"]
                    if held["fingerprint"] == digest:
                        change = Change(kind, obj.name, "unchanged", version)
                    elif reasons := breaking_changes(kind, old, spec):
                        change = Change(kind, obj.name, "new_version", version + 1, reasons)
                    else:
                        change = Change(kind, obj.name, "updated", version, compatible_changes(old, spec))
                changes.append(change)
                if dry_run or change.action == "unchanged":
                    continue
                write = persisted.update_object if change.action == "updated" else persisted.add_object
                write(tx, kind, obj.name, change.version, json.dumps(spec), digest, now)
                self._record_apply_lineage(tx, obj, change.version)
            if dry_run:
                return changes
        return changes

    def _check_references(self, objects: list[Definition]) -> None:
        names = {o.name for o in objects if isinstance(o, FeatureView)} | set(self.names("view"))
        for obj in objects:
            if isinstance(obj, OnDemandFeatureView):
                for view in obj.source_views:
                    if view not in names:
                        raise unknown_name(f"source view of {obj.name!r}", view, names)

    def _record_apply_lineage(self, tx: Any, obj: Definition, version: int) -> None:
        if isinstance(obj, FeatureView):
            edges = [("source", obj.source.label, "view", obj.name)]
            if isinstance(obj.source, PushSource) and obj.source.batch_source is not None:
                edges.append(("source", obj.source.batch_source.label, "source", obj.source.label))
            edges += [("entity", e.name, "view", obj.name) for e in obj.entities]
        elif isinstance(obj, OnDemandFeatureView):
            edges = [("view", v, "view", obj.name) for v in obj.source_views]
        else:
            edges = []
        persisted.add_lineage(tx, edges, time.time())

    # ------------------------------------------------------------ reading
    def names(self, kind: str) -> list[str]:
        """Return the names of every object of a kind."""
        return persisted.names(self.store, kind)

    def list(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Return the latest version of every object (optionally of one kind)."""
        rows = persisted.latest_objects(self.store, kind)
        return [{"kind": r["kind"], "name": r["name"], "version": r["version"], "spec": json.loads(r["spec"]),
                 "updated_at": r["updated_at"]} for r in rows]

    def get_spec(self, kind: str, name: str, version: int | None = None) -> tuple[int, dict[str, Any]]:
        """Return (version, spec) of an object: the latest unless a version is given."""
        row = persisted.latest_object(self.store, kind, name, version)
        if row is None:
            if version is not None and name in self.names(kind):
                raise NotFoundError(f"{kind} {name!r} has no version {version}")
            raise unknown_name(kind.replace("_", "-"), name, self.names(kind))
        return row["version"], json.loads(row["spec"])

    def versions(self, kind: str, name: str) -> list[int]:
        """Return every version number of an object."""
        return persisted.versions(self.store, kind, name)

    def load_all(self) -> tuple[dict[str, Entity], dict[str, FeatureView], dict[str, OnDemandFeatureView]]:
        """Rebuild the latest version of every definition as Python objects."""
        entities = {r["name"]: Entity.from_spec(r["spec"]) for r in self.list("entity")}
        views: dict[str, FeatureView] = {}
        for r in self.list("view"):
            s = r["spec"]
            aggregations = [Aggregation.from_spec(a) for a in s.get("aggregations", ())]
            views[r["name"]] = FeatureView(
                name=s["name"], entities=[entities[e] for e in s["entities"]],
                features=[] if aggregations else [Feature.from_spec(f) for f in s["features"]],
                aggregations=aggregations, allowed_lateness=s.get("allowed_lateness", 3600.0),
                source=source_from_spec(s["source"]),
                ttl=s["ttl"], owner=s["owner"], description=s["description"], tags=s["tags"],
                freshness_sla=s["freshness_sla"], transformation=_transformation_from_spec(s["transformation"]),
                online=s["online"], timestamp_field=s["timestamp_field"])
        odfvs: dict[str, OnDemandFeatureView] = {}
        for r in self.list("on_demand_view"):
            s = r["spec"]
            sources: list[Any] = [views[v] for v in s["views"] if v in views]
            sources += [RequestSource(q["name"], [Feature.from_spec(f) for f in q["schema"]]) for q in s["request"]]
            odfvs[r["name"]] = OnDemandFeatureView(
                name=s["name"], sources=sources, features=[(f["name"], f["dtype"]) for f in s["features"]],
                transformation=_transformation_from_spec(s["transformation"]), description=s["description"],
                owner=s["owner"], tags=s["tags"])
        return entities, views, odfvs

    def generation(self) -> float:
        """Return a value that changes whenever any definition changes (for cheap cache checks)."""
        return persisted.generation(self.store)

    # ------------------------------------------------------------ lineage
    def record_lineage(self, src_kind: str, src: str, dst_kind: str, dst: str) -> None:
        """Record that src feeds dst (e.g. view -> dataset, dataset -> run, run -> model); repeats are ignored."""
        with self.store.transaction() as tx:
            persisted.add_lineage(tx, [(src_kind, src, dst_kind, dst)], time.time())

    def lineage(self, kind: str, name: str) -> dict[str, list[dict[str, str]]]:
        """Return every edge upstream and downstream of a node, transitively."""
        return {"upstream": persisted.reachable_edges(self.store, kind, name, upstream=True),
                "downstream": persisted.reachable_edges(self.store, kind, name, upstream=False)}


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return human-readable lines describing how two specs differ."""
    lines = []
    old_f = {f["name"]: f["dtype"] for f in old.get("features", [])}
    new_f = {f["name"]: f["dtype"] for f in new.get("features", [])}
    for name in sorted(set(old_f) | set(new_f)):
        if name not in new_f:
            lines.append(f"- feature {name}: {old_f[name]}")
        elif name not in old_f:
            lines.append(f"+ feature {name}: {new_f[name]}")
        elif old_f[name] != new_f[name]:
            lines.append(f"~ feature {name}: {old_f[name]} -> {new_f[name]}")
    for key in sorted(set(old) | set(new)):
        if key != "features" and old.get(key) != new.get(key):
            lines.append(f"~ {key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}")
    return lines

