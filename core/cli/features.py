"""`forgeml features`: apply, ls, show, diff, materialize, status, lineage (stream commands: feature_streams)."""

from __future__ import annotations

import json
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table

DEFAULT_DEFINITIONS = "features.py"


def _store() -> Any:
    from forgeml.features import store_for

    return store_for()


def _definitions(target: str | None) -> list[Any]:
    from forgeml.features import load_definitions

    store = _store()
    return load_definitions(target or DEFAULT_DEFINITIONS, base=store.workspace.root)


def _print_changes(changes: list[Any], dry_run: bool) -> None:
    verbs = {"created": "create" if dry_run else "created", "updated": "update" if dry_run else "updated",
             "unchanged": "unchanged", "new_version": "new version" if dry_run else "new version"}
    for c in changes:
        line = f"{verbs[c.action]:<12} {c.kind:<15} {c.name} v{c.version}"
        if c.reasons:
            line += f"  ({'; '.join(c.reasons)})"
        click.echo(line)


@click.group("features")
def features_group() -> None:
    """Feature store: definitions, materialization, freshness."""


@features_group.command("apply")
@click.argument("definitions", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def apply_cmd(definitions: str | None, as_json: bool) -> None:
    """Register the entities and views defined in a Python file or module (default: features.py)."""
    changes = _store().apply(_definitions(definitions))
    if as_json:
        emit_json(changes)
    else:
        _print_changes(changes, dry_run=False)


@features_group.command("diff")
@click.argument("definitions", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff_cmd(definitions: str | None, as_json: bool) -> None:
    """Show what `apply` would change, line by line, without changing anything."""
    from forgeml.errors import NotFoundError
    from forgeml.features.registry import diff_specs, kind_of

    store = _store()
    objects = _definitions(definitions)
    changes = store.plan(objects)
    if as_json:
        emit_json(changes)
        return
    _print_changes(changes, dry_run=True)
    for obj, change in zip(objects, changes):
        if change.action in ("updated", "new_version"):
            try:
                _, old = store.registry.get_spec(kind_of(obj), obj.name)
            except NotFoundError:
                continue
            for line in diff_specs(old, obj.to_spec()):
                click.echo(f"    {line}")


@features_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(as_json: bool) -> None:
    """List entities, feature views and on-demand views (latest versions)."""
    rows = []
    for item in _store().registry.list():
        spec = item["spec"]
        features = ", ".join(f"{f['name']}:{f['dtype']}" for f in spec.get("features", [])) or ", ".join(
            spec.get("join_keys", []))
        rows.append({"kind": item["kind"], "name": item["name"], "version": item["version"],
                     "owner": spec.get("owner", ""), "features": features})
    if as_json:
        emit_json(rows)
    else:
        print_table(rows, ["kind", "name", "version", "owner", "features"], title="features")


@features_group.command("show")
@click.argument("name")
@click.option("--version", type=int, default=None, help="Show this version instead of the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(name: str, version: int | None, as_json: bool) -> None:
    """Show one view (or entity) with its versions and lineage."""
    from forgeml.errors import NotFoundError

    registry = _store().registry
    for kind in ("view", "on_demand_view", "entity"):
        if name in registry.names(kind):
            break
    else:
        raise NotFoundError(f"no view or entity named {name!r}; see `forgeml features ls`")
    found_version, spec = registry.get_spec(kind, name, version)
    data = {"kind": kind, "name": name, "version": found_version, "versions": registry.versions(kind, name),
            "spec": spec, "lineage": registry.lineage(kind, name)}
    if as_json:
        emit_json(data)
        return
    click.echo(f"{kind} {name} v{found_version} (versions: {', '.join(map(str, data['versions']))})")
    pii = _pii_of(spec)
    if pii:
        click.echo(f"PII: {', '.join(pii)}")
    click.echo(json.dumps(spec, indent=2))
    for direction in ("upstream", "downstream"):
        for edge in data["lineage"][direction]:
            click.echo(f"{direction:<10} {edge['src_kind']}:{edge['src']} -> {edge['dst_kind']}:{edge['dst']}")


def _pii_of(spec: dict[str, Any]) -> list[str]:
    """Return the PII columns a stored spec tags: its features, request fields, and an entity's own keys."""
    fields = [*spec.get("features", []), *(f for r in spec.get("request", []) for f in r["schema"])]
    names = [f["name"] for f in fields if f.get("pii")]
    return names + (list(spec.get("join_keys", [])) if spec.get("pii") else [])


@features_group.command("materialize")
@click.option("--start", default=None, help="Start of the window (ISO time, UTC if no zone); default: each view's "
                                            "watermark.")
@click.option("--end", default=None, help="End of the window (ISO time, UTC if no zone); default: now.")
@click.option("--view", "views", multiple=True, help="Only these views (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def materialize_cmd(start: str | None, end: str | None, views: tuple[str, ...], as_json: bool) -> None:
    """Copy the newest feature values into the online store, incrementally from each view's watermark."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    store = _store()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=as_json, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = bar.add_task(view, total=total or 1)
            bar.update(tasks[view], completed=done if total else 1, total=total or 1)

        results = store.materialize(_utc(start), _utc(end), list(views) or None, progress=progress)
    if as_json:
        emit_json(results)
    else:
        for r in results:
            click.echo(f"{r['view']}: {r['rows']} rows for [{r['start'] or 'beginning'}, {r['end']})")


def _utc(text: str | None) -> Any:
    from datetime import UTC, datetime

    from forgeml.errors import ValidationError

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise ValidationError(f"{text!r} is not an ISO date or time such as 2024-05-01 or 2024-05-01T12:00") from e
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@features_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(as_json: bool) -> None:
    """Show each view's last update against its freshness SLA; stale views are flagged."""
    statuses = _store().status()
    if as_json:
        emit_json([s.to_dict() for s in statuses])
        return
    rows = []
    for s in statuses:
        rows.append({"view": s.view, "version": s.version,
                     "last event": s.last_event.isoformat(timespec="seconds") if s.last_event else "never",
                     "age": _age(s.age_s), "sla": _age(s.freshness_sla_s) if s.freshness_sla_s else "-",
                     "state": "STALE" if s.stale else "ok",
                     "watermark": s.watermark.isoformat(timespec="seconds") if s.watermark else "-"})
    print_table(rows, ["view", "version", "last event", "age", "sla", "state", "watermark"], title="feature freshness")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@features_group.command("lineage")
@click.argument("kind")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lineage_cmd(kind: str, name: str, as_json: bool) -> None:
    """Show what feeds a node and what it feeds (kinds: source, entity, view, dataset, run, model)."""
    data = _store().lineage(kind, name)
    if as_json:
        emit_json(data)
        return
    for direction in ("upstream", "downstream"):
        for edge in data[direction]:
            click.echo(f"{direction:<10} {edge['src_kind']}:{edge['src']} -> {edge['dst_kind']}:{edge['dst']}")


def _add_stream_commands() -> None:
    from forgeml.cli.feature_streams import COMMANDS

    for command in COMMANDS:
        features_group.add_command(command)


_add_stream_commands()
