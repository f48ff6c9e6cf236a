"""`forgeml monitor`: drift reports, alert rule evaluation, alert listing and acknowledgement."""

from __future__ import annotations

import sys
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table


def _table(source: str) -> Any:
    """Read a dataset reference (name@v3) or a .parquet/.csv file into an Arrow table."""
    from pathlib import Path

    from forgeml.documents import read_table_file
    from forgeml.errors import ValidationError

    if not source.strip():
        raise ValidationError("give a dataset reference (name@v3) or a .parquet/.csv file")
    path = Path(source)
    if path.suffix.lower() in (".parquet", ".csv") or path.exists():
        return read_table_file(path, "file")
    return source


@click.group("monitor")
def monitor_group() -> None:
    """Watch models: drift reports, alert rules and alerts."""


@monitor_group.command("run")
@click.option("--rule", "only", multiple=True, help="Evaluate only this rule (repeatable).")
@click.option("--at", "at", default=None, help="Evaluate as of this ISO time (default: now).")
@click.option("--watch", is_flag=True, help="Keep evaluating on [monitoring] schedule until interrupted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def monitor_run(only: tuple[str, ...], at: str | None, watch: bool, as_json: bool) -> None:
    """Evaluate the alert rules of plugins.toml once (or on a schedule with --watch)."""
    from forgeml.monitoring.alerts import evaluate
    from forgeml.workspace import current

    ws = current()
    if watch:
        _watch(ws, only, as_json)
        return
    outcomes = evaluate(ws, now=at, only=only or None)
    _show(outcomes, as_json)
    if any(o.outcome == "error" for o in outcomes):
        sys.exit(1)


def _show(outcomes: list[Any], as_json: bool) -> None:
    rows = [{"rule": o.rule, "subject": o.subject, "metric": o.metric,
             "value": None if o.value is None else round(o.value, 6), "outcome": o.outcome,
             "alert": o.alert.id if o.alert else None, "error": o.error} for o in outcomes]
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no alert rules; add [[monitoring.rules]] tables to plugins.toml")
    else:
        print_table(rows, ["rule", "subject", "metric", "value", "outcome", "alert", "error"], title="alert rules")


def _watch(ws: Any, only: tuple[str, ...], as_json: bool) -> None:
    import time
    from datetime import UTC, datetime

    from croniter import croniter

    from forgeml.monitoring.alerts import evaluate

    schedule = ws.config.section("monitoring").schedule
    click.echo(f"evaluating alert rules on {schedule!r}; Ctrl-C stops", err=True)
    while True:
        nxt = croniter(schedule, datetime.now(UTC)).get_next(datetime)
        time.sleep(max((nxt - datetime.now(UTC)).total_seconds(), 0))
        _show(evaluate(ws, only=only or None), as_json)


@monitor_group.command("drift")
@click.argument("reference")
@click.argument("current", required=False)
@click.option("--model", default=None, help="Compare with this model's prediction log instead of CURRENT.")
@click.option("--window", default="1d", show_default=True, help="Prediction-log window ending now (with --model).")
@click.option("--columns", default=None, help="Comma-separated columns (default: every shared column but identifiers, labels and timestamps).")
@click.option("--tests", default=None, help="Comma-separated drift tests, e.g. psi,ks (default: per column kind).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def monitor_drift(reference: str, current: str | None, model: str | None, window: str, columns: str | None,
                  tests: str | None, as_json: bool) -> None:
    """Drift report of CURRENT (a dataset name@vN or a .parquet/.csv file) against REFERENCE."""
    from datetime import UTC, datetime

    from forgeml.errors import ValidationError
    from forgeml.monitoring.drift import drift_report
    from forgeml.monitoring.sources import parse_window, read_prediction_log
    from forgeml.workspace import current as current_ws

    ws = current_ws()
    if model:
        end = datetime.now(UTC)
        cur = read_prediction_log(model, end - parse_window(window), end, workspace=ws)
    elif current:
        cur = _table(current)
    else:
        raise ValidationError("give CURRENT (a dataset or file) or --model NAME to read its prediction log")
    report = drift_report(_table(reference), cur, columns=columns.split(",") if columns else None,
                          tests=tests.split(",") if tests else None, workspace=ws, model=model)
    if as_json:
        emit_json(report.to_dict())
        return
    rows = []
    for c in report.columns:
        for r in c.results:
            rows.append({"column": c.column, "kind": c.kind, "test": r.test, "statistic": f"{r.statistic:.4g}",
                         "p_value": "" if r.p_value is None else f"{r.p_value:.3g}",
                         "effect": "" if r.effect_size is None else f"{r.effect_size:.4g}",
                         "drifted": "yes" if r.drifted else "", "severity": r.severity if r.drifted else ""})
    print_table(rows, title=f"drift: {len(report.drifted_columns)} of {len([c for c in report.columns if c.role == 'feature'])}"
                            f" columns drifted ({report.current_rows} vs {report.reference_rows} rows)")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for column, why in report.skipped.items():
        click.echo(f"skipped {column}: {why}", err=True)


@monitor_group.command("skew")
@click.argument("model")
@click.option("--window", default="1d", show_default=True, help="Prediction-log window ending now: 15m, 6h, 1d.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def monitor_skew(model: str, window: str, as_json: bool) -> None:
    """Training-serving skew: MODEL's served feature values against their offline recomputation."""
    from dataclasses import asdict
    from datetime import UTC, datetime

    from forgeml.monitoring.skew import skew_report
    from forgeml.monitoring.sources import parse_window

    end = datetime.now(UTC)
    report = skew_report(model, end - parse_window(window), end)
    if as_json:
        emit_json({"model": report.model, "rows": report.rows, "share": report.share,
                   "features": [asdict(f) for f in report.features]})
    else:
        print_table(
            [{"feature": f.feature, "rows": f.rows, "mismatches": f.mismatches, "share": f"{f.share:.2%}",
              "largest difference": "" if f.max_abs_diff is None else f"{f.max_abs_diff:.4g}",
              "skewed": f.severity if f.skewed else ""} for f in report.features],
            title=f"skew of {model}: {report.rows} logged requests")
    if report.skewed_features:  # non-zero, so a script or CI step can gate on it
        sys.exit(1)


@monitor_group.group("alerts")
def alerts_group() -> None:
    """List and acknowledge alerts."""


@alerts_group.command("ls")
@click.option("--status", default=None, help="open, acknowledged, resolved or all (default: unresolved).")
@click.option("--all", "show_all", is_flag=True, help="Include resolved alerts.")
@click.option("--rule", default=None, help="Only this rule's alerts.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alerts_ls(status: str | None, show_all: bool, rule: str | None, limit: int, as_json: bool) -> None:
    """List alerts, newest first."""
    from forgeml.monitoring.alerts import list_alerts

    alerts = list_alerts("all" if show_all else status, rule, limit)
    if as_json:
        emit_json([a.to_dict() for a in alerts])
        return
    rows = [{"id": a.id, "status": a.status, "severity": a.severity, "rule": a.rule, "subject": a.subject,
             "value": f"{a.value:.4g}" if a.value is not None else "", "seen": a.occurrences,
             "fired": a.fired_at.isoformat(timespec="seconds"),
             "delivered": ", ".join(d["notifier"] + ("" if d["ok"] else " (failed)") for d in a.deliveries)}
            for a in alerts]
    print_table(rows, title="alerts")


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", "actor", default="", help="Who acknowledges (default: the current user).")
def alerts_ack(alert_id: int, actor: str) -> None:
    """Acknowledge an alert: no new notifications until its rule clears."""
    from forgeml.monitoring.alerts import acknowledge

    alert = acknowledge(alert_id, actor)
    click.echo(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")
