"""`forgeml pipeline`: run pipelines, list and show their runs, and evaluate triggers."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table


def _params(pairs: tuple[str, ...], as_json: str | None) -> dict[str, Any]:
    from forgeml.documents import parse_document, parse_json_value
    from forgeml.errors import ValidationError

    params: dict[str, Any] = parse_document(as_json, "json", "--params") if as_json else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"-p {pair!r}: write KEY=VALUE")
        try:
            params[key] = parse_json_value(value, f"-p {key}")
        except ValidationError:
            params[key] = value
    return params


@click.group("pipeline")
def pipeline_group() -> None:
    """Run pipelines and inspect their history and triggers."""


@pipeline_group.command("run")
@click.argument("name")
@click.option("-p", "--param", "pairs", multiple=True, help="Parameter KEY=VALUE (JSON values allowed).")
@click.option("--params", "params_json", default=None, help="Parameters as a JSON object.")
@click.option("--cause", default="manual", show_default=True, help="Why it runs (recorded in the history).")
@click.option("--no-cache", is_flag=True, help="Run every step even when a cached output matches.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pipeline_run(name: str, pairs: tuple[str, ...], params_json: str | None, cause: str, no_cache: bool,
                 as_json: bool) -> None:
    """Run pipeline NAME (or module:name / file.py:name) now, in this process."""
    from forgeml.pipelines.runner import run_pipeline

    run = run_pipeline(name, _params(pairs, params_json), cause=cause, use_cache=False if no_cache else None)
    if as_json:
        emit_json(run)
    else:
        click.echo(run.report())
    if run.status != "SUCCEEDED":
        sys.exit(1)


@pipeline_group.command("ls")
@click.option("--pipeline", default=None, help="Only this pipeline's runs.")
@click.option("--defined", is_flag=True, help="List the pipelines defined instead of runs.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pipeline_ls(pipeline: str | None, defined: bool, limit: int, as_json: bool) -> None:
    """List recent pipeline runs (or the defined pipelines with --defined)."""
    from forgeml.workspace import current

    ws = current()
    if defined:
        from forgeml.pipelines.dsl import load_pipelines

        rows = [{"pipeline": p.name, "parameters": ", ".join(p.parameters()), "module": p.fn.__module__}
                for p in load_pipelines(ws).values()]
    else:
        from forgeml.pipelines.runner import list_runs

        rows = list_runs(pipeline, limit, ws)
    if as_json:
        emit_json(rows)
    else:
        print_table(rows, title="pipelines" if defined else "pipeline runs")


@pipeline_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pipeline_show(run_id: str, as_json: bool) -> None:
    """Show one run: cause, parameters, and each step's state, attempts, duration and error."""
    from forgeml.pipelines.runner import get_run

    run = get_run(run_id)
    if as_json:
        emit_json(run)
        return
    click.echo(run.report())
    click.echo(f"params: {json.dumps(run.params, default=str)}")
    for s in run.steps:
        if s.error and s.state in ("FAILED", "SKIPPED"):
            click.echo(f"--- {s.node} ({s.state})\n{s.error.rstrip()}")


@pipeline_group.command("triggers")
@click.option("--tick", is_flag=True, help="Start the cron triggers that are due now, once.")
@click.option("--watch", is_flag=True, help="Keep starting due cron triggers until interrupted.")
@click.option("--history", is_flag=True, help="Show recent trigger starts and their causes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pipeline_triggers(tick: bool, watch: bool, history: bool, as_json: bool) -> None:
    """List triggers (cron, new data, alerts) with the next cron times; --tick/--watch start due ones."""
    from forgeml.pipelines.triggers import CronTriggers, trigger_events, triggers
    from forgeml.workspace import current

    ws = current()
    cron = CronTriggers(ws)
    if watch:
        click.echo("starting due cron triggers; Ctrl-C stops", err=True)
        cron.watch()
        return
    if tick:
        rows = cron.tick()
    elif history:
        rows = trigger_events(ws)
    else:
        nxt = cron.next_times()
        rows = [{"trigger": t.name, "pipeline": t.pipeline, "kind": t.kind, "condition": t.condition,
                 "from": t.origin, "next": nxt[t.name].isoformat(timespec="minutes") if t.name in nxt else ""}
                for t in triggers(ws)]
    if as_json:
        emit_json(rows)
    elif rows:
        print_table(rows)
    else:
        click.echo("nothing to show" if (tick or history) else "no triggers; add [[pipelines.triggers]] to plugins.toml")
