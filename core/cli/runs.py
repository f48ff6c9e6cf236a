"""`forgeml runs`: list, show, search, compare, delete, restore, reproduce and fetch artifacts of runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


def _plain(value: Any) -> Any:
    """Turn pandas values (NaN, NaT, Timestamps) into JSON values."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return None if str(value) == "NaT" else value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


ATTRIBUTE_COLUMNS = ("id", "name", "experiment", "status", "started", "ended", "parent_id", "job_id")


def _value_columns(frame: Any) -> list[str]:
    return [c for c in frame.columns if c.startswith(("metrics.", "params.", "tags."))]


def _varying(frame: Any, columns: list[str]) -> list[str]:
    """The columns whose value differs between the runs (all of them when there is a single run)."""
    if len(frame) < 2:
        return columns
    return [c for c in columns if frame[c].astype(str).nunique(dropna=False) > 1]


def _chosen_columns(frame: Any, wanted: str | None) -> tuple[list[str], list[str]]:
    """Resolve --columns (comma-separated; lr finds params.lr or metrics.lr) or pick the defaults."""
    from forgeml.errors import NotFoundError, did_you_mean

    values = _value_columns(frame)
    if wanted:
        chosen = []
        for name in (n.strip() for n in wanted.split(",") if n.strip()):
            if name in ATTRIBUTE_COLUMNS or name in values:
                chosen.append(name)
                continue
            matches = [c for c in values if c.split(".", 1)[1] == name]
            if len(matches) != 1:
                choices = [*ATTRIBUTE_COLUMNS, *values]
                why = f"is ambiguous ({', '.join(matches)})" if matches else f"is not a column{did_you_mean(name, choices)}"
                raise NotFoundError(f"--columns: {name!r} {why}; columns: {', '.join(choices)}")
            chosen.append(matches[0])
        return chosen, []
    fixed = ["id", "name", "status", "started"]
    if frame["experiment"].nunique() > 1:
        fixed.insert(2, "experiment")
    metrics = [c for c in values if c.startswith("metrics.")]
    params = [c for c in values if c.startswith("params.")]
    return fixed, _varying(frame, metrics) + _varying(frame, params)


def _headers(columns: list[str]) -> dict[str, str]:
    """Header per column: the bare key when no other column has the same key, else the full name."""
    keys = [c.split(".", 1)[1] for c in columns if "." in c]
    return {c: c.split(".", 1)[1] if "." in c and keys.count(c.split(".", 1)[1]) == 1 else c for c in columns}


def _short(value: Any) -> Any:
    """A float, or a param stored as the text of a long float, in 4 significant digits."""
    if isinstance(value, str) and len(value) > 8:
        try:
            number = float(value)
        except ValueError:
            return value
        return f"{number:.4g}" if math.isfinite(number) else value
    return f"{value:.4g}" if isinstance(value, float) else value


def _run_rows(frame: Any, short: bool) -> list[dict[str, Any]]:
    rows = []
    for rec in frame.to_dict("records"):
        row = {"id": rec["run_id"][:8], "name": rec["name"] or "", "experiment": rec["experiment"],
               "status": rec["status"], "started": format_utc(rec["start_time"], short=short),
               "ended": format_utc(rec["end_time"], short=short),
               "parent_id": (rec["parent_id"] or "")[:8], "job_id": rec["job_id"] or ""}
        for c in _value_columns(frame):
            row[c] = _short(_plain(rec[c]))
        rows.append(row)
    return rows


def _print_runs(frame: Any, title: str, columns: str | None, output_format: str | None, query: str = "") -> None:
    """Print runs as a table fitted to the terminal, or as JSON or CSV (every column unless --columns)."""
    from forgeml.cli.output import emit_csv, fit_columns, terminal_width
    from forgeml.tracking.query import parse_query
    from forgeml.tracking.search import referenced_fields

    fixed, optional = _chosen_columns(frame, columns)
    # the keys the query filters or sorts on come first: they are what the reader asked about
    named = [f"{f.kind}.{f.key}" for f in referenced_fields(parse_query(query))]
    optional = [c for c in named if c in optional] + [c for c in optional if c not in named]
    if output_format in ("json", "csv"):
        records = _frame_records(frame)
        if columns:
            full = {"id": "run_id", "started": "start_time", "ended": "end_time"}
            records = [{c: rec.get(full.get(c, c)) for c in fixed} for rec in records]
        if output_format == "json":
            emit_json(records)
        else:
            emit_csv(records, list(records[0]) if records else list(frame.columns))
        return
    width = terminal_width()
    rows = _run_rows(frame, short=width < 120)  # a narrow terminal gets month-day hour:minute
    headers = _headers([*fixed, *optional])
    shown, left = fit_columns(rows, fixed, optional, headers, width)
    caption = None
    if left:
        caption = (f"{len(left)} more varying column(s) ({', '.join(headers[c] for c in left[:4])}"
                   f"{', ...' if len(left) > 4 else ''}): --columns, a wider terminal or --format json")
    print_table(rows, shown, title=title, headers=headers, caption=caption)


_COLUMNS_HELP = ("Comma-separated columns: id, name, experiment, status, started, ended, params.KEY, metrics.KEY, "
                 "tags.KEY (a bare KEY when only one kind has it). Default: the params and metrics that vary.")
_FORMAT_HELP = "Print a table fitted to the terminal (default), JSON or CSV (every column unless --columns)."


@click.group("runs")
def runs_group() -> None:
    """Tracked runs: list, inspect, search, compare, delete, restore, reproduce, artifacts."""


@runs_group.command("ls")
@click.option("-e", "--experiment", "experiments", multiple=True, help="Only runs of this experiment (repeatable).")
@click.option("--status", help="Only runs with this status (RUNNING, FINISHED, FAILED, KILLED, SCHEDULED).")
@click.option("-n", "--limit", default=50, show_default=True, help="Show at most this many runs, newest first.")
@click.option("--deleted", is_flag=True, help="Include deleted runs.")
@click.option("--columns", help=_COLUMNS_HELP)
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), help=_FORMAT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --format json).")
def runs_ls(experiments: tuple[str, ...], status: str | None, limit: int, deleted: bool, columns: str | None,
            output_format: str | None, as_json: bool) -> None:
    """List runs, newest first."""
    from forgeml.tracking import search_runs
    from forgeml.tracking.api import valid_status

    query = f"status = '{valid_status(status)}'" if status else ""
    frame = search_runs(query, experiments=list(experiments) or None, include_deleted=deleted, limit=limit)
    _print_runs(frame, f"{len(frame)} run(s)", columns, "json" if as_json else output_format)


@runs_group.command("search")
@click.argument("query")
@click.option("-n", "--limit", type=int, default=None, help="Return at most this many runs.")
@click.option("--deleted", is_flag=True, help="Include deleted runs.")
@click.option("--columns", help=_COLUMNS_HELP)
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), help=_FORMAT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --format json).")
def runs_search(query: str, limit: int | None, deleted: bool, columns: str | None, output_format: str | None,
                as_json: bool) -> None:
    """Search runs by attributes, params, metrics and tags with a QUERY.

    Example: "params.lr between 1e-4 and 1e-3 and metrics.val_loss < 0.5 order by metrics.val_loss"
    """
    from forgeml.tracking import search_runs

    frame = search_runs(query, include_deleted=deleted, limit=limit)
    _print_runs(frame, f"{len(frame)} run(s) matching", columns, "json" if as_json else output_format, query)


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_show(run_id: str, as_json: bool) -> None:
    """Show one run: attributes, params, final metrics, tags, inputs, artifacts and captured context."""
    from forgeml.tracking import get_run, list_artifacts

    run = get_run(run_id)
    artifacts = list_artifacts(run.id)
    if as_json:
        emit_json({**run.__dict__, "artifacts": [a.__dict__ if hasattr(a, "__dict__") else a for a in artifacts]})
        return
    git = run.context.get("git") or {}
    click.echo(f"run        {run.id}{'  (deleted)' if run.deleted else ''}")
    click.echo(f"name       {run.name or ''}")
    click.echo(f"experiment {run.experiment}")
    click.echo(f"status     {run.status}")
    click.echo(f"started    {format_utc(run.start_time)}   ended {format_utc(run.end_time)}")
    if run.parent_id:
        click.echo(f"parent     {run.parent_id}")
    if run.job_id:
        click.echo(f"job        {run.job_id}")
    if git:
        click.echo(f"git        {git.get('commit')} ({git.get('branch')}){' dirty' if git.get('dirty') else ''}")
    if run.context.get("argv"):
        click.echo(f"command    {' '.join(run.context['argv'])}")
    if run.context.get("host"):
        click.echo(f"host       {run.context['host']}  python {run.context.get('python')}")
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if values:
            print_table([{"key": k, "value": v} for k, v in values.items()], title=title)
    if run.inputs:
        print_table(run.inputs, ["kind", "ref"], title="inputs")
    if artifacts:
        print_table([{"path": a.path, "size": a.size, "digest": a.digest[:12]} for a in artifacts], title="artifacts")


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--only-diff", is_flag=True, help="Show only the rows that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_compare(run_ids: tuple[str, ...], only_diff: bool, as_json: bool) -> None:
    """Compare runs side by side: params and final metrics, differences highlighted."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from forgeml.tracking import compare_runs

    comparison = compare_runs(list(run_ids))
    rows = [r for r in comparison.rows if r["differs"] or not only_diff]
    if as_json:
        emit_json({"run_ids": comparison.run_ids, "rows": rows})
        return
    table = Table(title="run comparison (differences in yellow)")
    table.add_column("field")
    for run_id in comparison.run_ids:
        table.add_column(run_id[:8])
    for row in rows:
        cells = ["" if v is None else escape(f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row["values"]]
        table.add_row(escape(row["field"]), *cells, style="bold yellow" if row["differs"] else None)
    Console().print(table)


@runs_group.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
def runs_delete(run_ids: tuple[str, ...]) -> None:
    """Delete runs (hidden from listings and search; `runs restore` brings them back)."""
    from forgeml.tracking import delete_runs

    click.echo(f"Deleted {delete_runs(list(run_ids))} run(s)")


@runs_group.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
def runs_restore(run_ids: tuple[str, ...]) -> None:
    """Restore deleted runs."""
    from forgeml.tracking import restore_runs

    click.echo(f"Restored {restore_runs(list(run_ids))} run(s)")


@runs_group.command("reproduce")
@click.argument("run_id")
@click.option("--target", help="Compute target to run on (default: the original's).")
@click.option("--dry-run", is_flag=True, help="Print the job spec that would be submitted; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_reproduce(run_id: str, target: str | None, dry_run: bool, as_json: bool) -> None:
    """Resubmit a run's work (its job spec or command, params, datasets, seed) through the scheduler."""
    from forgeml.jobs import reproduce

    plan = reproduce(run_id, target=target, dry_run=dry_run)
    if as_json:
        emit_json(plan)
        return
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        click.echo(json.dumps(plan.spec, indent=2, default=str))
    else:
        click.echo(f"Submitted job {plan.job_id} reproducing run {plan.run_id}")


@runs_group.command("artifacts")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_artifacts(run_id: str, as_json: bool) -> None:
    """List a run's artifacts."""
    from forgeml.tracking import list_artifacts

    records = list_artifacts(run_id)
    if as_json:
        emit_json(records)
    else:
        print_table([{"path": a.path, "size": a.size, "digest": a.digest} for a in records],
                    ["path", "size", "digest"], title=f"{len(records)} artifact(s)")


@runs_group.command("download")
@click.argument("run_id")
@click.argument("path", required=False)
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder to copy the artifacts into.")
def runs_download(run_id: str, path: str | None, dest: Path) -> None:
    """Copy a run's artifacts (all, or one file or folder by PATH) into a folder, verified."""
    from forgeml.tracking import download_artifacts

    files = download_artifacts(run_id, dest, path)
    for f in files:
        click.echo(str(f))


@runs_group.command("history")
@click.argument("run_id")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
def runs_history(run_id: str, key: str, as_json: bool, as_csv: bool) -> None:
    """Print every point of one metric of a run (step, timestamp, value)."""
    from forgeml.tracking import get_metric_history

    frame = get_metric_history(run_id, key)
    if as_csv:
        click.echo(frame.to_csv(index=False), nl=False)
    elif as_json:
        emit_json(_frame_records(frame))
    else:
        print_table([{"step": r["step"], "timestamp": format_utc(r["timestamp"]), "value": f"{r['value']:.6g}"}
                     for r in frame.to_dict("records")], title=f"{key}: {len(frame)} point(s)")
