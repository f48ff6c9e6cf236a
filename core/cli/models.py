"""`forgeml models`: register, list, show, promote, approve, roll back, alias and archive model versions."""

from __future__ import annotations

from typing import Any

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.errors import ValidationError
from forgeml.times import format_utc


def _pairs(values: tuple[str, ...], what: str, numeric: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--{what} {item!r}: write KEY=VALUE")
        if numeric:
            try:
                out[key] = float(value)
            except ValueError:
                raise ValidationError(f"--{what} {item!r}: the value must be a number") from None
        else:
            out[key] = value
    return out


def _read_example(path: str) -> Any:
    from forgeml.documents import read_table_file

    return read_table_file(path, "--example")


@click.group("models")
def models_group() -> None:
    """The model registry: versions, stages, aliases, gated promotion and rollback."""


@models_group.command("register")
@click.argument("name")
@click.argument("path")
@click.option("--flavor", required=True, help="Runtime flavor: sklearn, torch, onnx, python, or a plugin's.")
@click.option("--run-id", help="The run that produced the model.")
@click.option("--example", type=click.Path(exists=True, dir_okay=False), help="Input example (.parquet/.csv): infers the signature.")
@click.option("--background", type=click.Path(exists=True, dir_okay=False),
              help="Training rows (.parquet/.csv), sampled to 100 and stored with the version for explanations.")
@click.option("--metric", "metrics", multiple=True, help="KEY=VALUE metric (repeatable).")
@click.option("--param", "params", multiple=True, help="KEY=VALUE parameter (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Dataset version used, name@vN (repeatable).")
@click.option("--feature-view", "feature_views", multiple=True, help="Feature used, view:feature (repeatable).")
@click.option("--entity-key", "entity_keys", multiple=True, help="Entity key column (repeatable).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE tag (repeatable).")
@click.option("--description", default="", help="What this version is.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def register_cmd(name: str, path: str, flavor: str, run_id: str | None, example: str | None,
                 background: str | None, metrics: tuple, params: tuple, datasets: tuple, feature_views: tuple, entity_keys: tuple, tags: tuple,
                 description: str, as_json: bool) -> None:
    """Register the saved model at PATH (file or folder; with --run-id, a path in that run's artifacts)."""
    from forgeml.registry import register_model

    mv = register_model(name, path=path, flavor=flavor, run_id=run_id,
                        input_example=_read_example(example) if example else None,
                        background=_read_example(background) if background else None,
                        metrics=_pairs(metrics, "metric", numeric=True), params=_pairs(params, "param"),
                        datasets=list(datasets), feature_views=list(feature_views), entity_keys=list(entity_keys),
                        tags=_pairs(tags, "tag"), description=description)
    if as_json:
        emit_json(mv.to_dict())
    else:
        click.echo(f"registered {mv.uri} ({mv.flavor}, {mv.artifact_digest[:12]}) in {mv.stage}")


@models_group.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(name: str | None, as_json: bool) -> None:
    """List models, or the versions of NAME."""
    from forgeml.registry import headline, headline_text, list_models, list_versions

    if name:
        versions = list_versions(name)
        if as_json:
            emit_json([{**v.to_dict(), "headline": headline(v)} for v in versions])
        else:
            print_table([{"version": v.version, "stage": v.stage, "aliases": ", ".join(v.aliases),
                          "flavor": v.flavor, "evaluation": headline_text(headline(v)),
                          "created": format_utc(v.created_at)} for v in versions], title=f"model {name}")
        return
    rows = list_models()
    if as_json:
        emit_json(rows)
    else:
        print_table([{**r, "updated_at": format_utc(r["updated_at"])} for r in rows], title="models")


@models_group.command("show")
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(uri: str, as_json: bool) -> None:
    """Show a version (NAME@REF): metadata, evaluations, gate results, approvals and audit trail."""
    from forgeml.registry import approvals, audit_trail, evaluations, gate_results, resolve

    mv = resolve(uri)
    info = {**mv.to_dict(), "evaluations": evaluations(mv.name, mv.version),
            "gate_results": gate_results(mv.name, mv.version), "approvals": approvals(mv.name, mv.version),
            "audit": [a for a in audit_trail(mv.name) if a["subject"] == f"model:{mv.uri}"]}
    if as_json:
        emit_json(info)
        return
    click.echo(f"{mv.uri}  stage {mv.stage}  aliases {', '.join(mv.aliases) or '-'}  flavor {mv.flavor}")
    click.echo(f"artifact {mv.artifact_digest}  run {mv.run_id or '-'}  created {format_utc(mv.created_at)}")
    click.echo(f"datasets: {', '.join(mv.datasets) or '-'}   features: {', '.join(mv.feature_views) or '-'}")
    if mv.signature.get("inputs"):
        click.echo("inputs: " + ", ".join(f"{c['name']}:{c['type']}" for c in mv.signature["inputs"]))
    if mv.metrics:
        click.echo("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in mv.metrics.items()))
    for ev in info["evaluations"]:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in ev["metrics"].items() if isinstance(v, float))
        click.echo(f"evaluation on {ev['dataset']} ({ev['task']}, {format_utc(ev['at'])}): {shown}")
    if info["gate_results"]:
        print_table([{"stage": g["stage"], "gate": g["gate"], "passed": g["passed"], "message": g["message"],
                      "at": format_utc(g["at"])} for g in info["gate_results"]], title="gate results")
    if info["audit"]:
        print_table([{"at": format_utc(a["at"]), "actor": a["actor"], "action": a["action"],
                      "from": a["detail"].get("from", ""), "to": a["detail"].get("to", ""),
                      "reason": a["detail"].get("reason", "")} for a in info["audit"]], title="audit")


def _emit_move(result: Any, as_json: bool) -> None:
    mv = result.model_version
    if as_json:
        emit_json({"model_version": mv.to_dict(), "old_stage": result.old_stage,
                   "archived": result.archived.to_dict() if result.archived else None,
                   "gates": [g.__dict__ for g in result.gates]})
        return
    for g in result.gates:
        click.echo(f"  gate {g.gate}: passed ({g.message})")
    click.echo(f"{mv.uri}: {result.old_stage} -> {mv.stage}"
               + (f"; {result.archived.uri} archived" if result.archived else ""))


@models_group.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--stage", default="production", show_default=True, help="staging, candidate, production or archived.")
@click.option("--reason", default="", help="Why (written to the audit log).")
@click.option("--actor", help="Who is promoting (default: FORGEML_ACTOR or the login name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def promote_cmd(name: str, version: str, stage: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Move VERSION of NAME to a stage after every configured gate passes."""
    from forgeml.registry import promote

    _emit_move(promote(name, version, stage, actor=actor, reason=reason), as_json)


@models_group.command("approve")
@click.argument("name")
@click.argument("version")
@click.option("--reviewer", help="Who approves (default: FORGEML_ACTOR or the login name).")
@click.option("--comment", default="", help="A note kept with the approval.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def approve_cmd(name: str, version: str, reviewer: str | None, comment: str, as_json: bool) -> None:
    """Record an approval of VERSION of NAME (checked by the approvals gate)."""
    from forgeml.registry import approve

    out = approve(name, version, reviewer=reviewer, comment=comment)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{out['reviewer']} approved {name}@{out['version']}")


@models_group.command("rollback")
@click.argument("name")
@click.option("--reason", default="", help="Why (written to the audit log).")
@click.option("--actor", help="Who is rolling back.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rollback_cmd(name: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Restore the previous production version of NAME in one transaction."""
    from forgeml.registry import rollback

    _emit_move(rollback(name, actor=actor, reason=reason), as_json)


@models_group.command("history")
@click.argument("name")
@click.option("--at", "at", help="Name only the version serving production at this ISO time (UTC without a zone).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_cmd(name: str, at: str | None, as_json: bool) -> None:
    """List NAME's production periods, or which version served production at a past time."""
    from forgeml.auth.audit import parse_time
    from forgeml.registry.promotion import production_at, production_history
    from forgeml.times import format_utc

    if at is not None:
        when = parse_time(at, "--at")
        version = production_at(name, when or 0.0)
        if as_json:
            emit_json({"model": name, "at": when, "version": version})
        else:
            click.echo(f"{name}: {'v' + str(version) if version is not None else 'no version'} served production at "
                       f"{format_utc(when)}")
        return
    rows = production_history(name)
    if as_json:
        emit_json(rows)
        return
    print_table([{"version": r["version"], "from": format_utc(r["started_at"]),
                  "until": format_utc(r["ended_at"]) if r["ended_at"] else "now", "ended_by": r["ended_by"] or ""}
                 for r in rows], title=f"{name} in production")


@models_group.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alias_cmd(name: str, alias: str, version: str | None, delete: bool, as_json: bool) -> None:
    """Point ALIAS of NAME (champion, challenger, ...) at VERSION, or --delete it."""
    from forgeml.registry import delete_alias, set_alias

    if delete:
        delete_alias(name, alias)
        if as_json:
            emit_json({"name": name, "alias": alias, "deleted": True})
        else:
            click.echo(f"removed alias {alias} of {name}")
        return
    if version is None:
        raise ValidationError("give the VERSION the alias should point at, or --delete")
    mv = set_alias(name, alias, version)
    if as_json:
        emit_json(mv.to_dict())
    else:
        click.echo(f"{name}@{alias} -> version {mv.version}")


@models_group.command("archive")
@click.argument("name")
@click.argument("version")
@click.option("--reason", default="", help="Why (written to the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def archive_cmd(name: str, version: str, reason: str, as_json: bool) -> None:
    """Move VERSION of NAME to ARCHIVED (it stays loadable)."""
    from forgeml.registry import archive

    _emit_move(archive(name, version, reason=reason), as_json)
