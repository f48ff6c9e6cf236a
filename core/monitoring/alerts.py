"""Alert rules: evaluate, store de-duplicated alerts, deliver them through notifiers, acknowledge.

An alert stays unresolved (open, then maybe acknowledged) while its rule keeps firing for the same
subject; repeated firings only bump its occurrence count, so people hear about it once. When the
rule evaluates clear again the alert is resolved, and the next firing opens a new one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import ForgeError, NotFoundError, ValidationError
from forgeml.monitoring import schema
from forgeml.monitoring.settings import OPERATORS, SEVERITIES, AlertRule

log = logging.getLogger("forgeml.monitoring")
STATUSES = ("open", "acknowledged", "resolved")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
}


@dataclass
class Alert:
    """A stored alert."""

    id: int
    rule: str
    subject: str
    metric: str
    value: float | None
    threshold: float
    op: str
    severity: str
    status: str
    message: str
    pipeline: str | None
    fired_at: datetime
    last_seen_at: datetime
    occurrences: int = 1
    details: dict[str, Any] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as JSON-able values (times in ISO 8601 UTC)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass
class RuleOutcome:
    """What one rule evaluation found: fired (new alert), ongoing, ok, resolved, no data, or error."""

    rule: str
    subject: str
    metric: str
    value: float | None
    outcome: str
    alert: Alert | None = None
    error: str = ""


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"], rule=row["rule"], subject=row["subject"], metric=row["metric"], value=row["value"],
        threshold=row["threshold"], op=row["op"], severity=row["severity"], status=row["status"],
        message=row["message"], pipeline=row["pipeline"], fired_at=_time(row["fired_at"]),
        last_seen_at=_time(row["last_seen_at"]), occurrences=row["occurrences"],
        details=json.loads(row["details"]), deliveries=json.loads(row["deliveries"]),
        acknowledged_at=_time(row["acknowledged_at"]), acknowledged_by=row["acknowledged_by"],
        resolved_at=_time(row["resolved_at"]),
    )


def _ws(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


# ---------------------------------------------------------------- rules and notifiers
def rules(workspace: Any = None) -> list[AlertRule]:
    """Return the workspace's alert rules, validated (unknown metric, operator, severity, window, notifier)."""
    settings = _ws(workspace).config.section("monitoring")
    check_rules(settings)
    return list(settings.rules or ())


def check_rules(settings: Any, prefix: str = "") -> None:
    """Validate every alert rule of a [monitoring] section; ``prefix`` names the file in messages."""
    from forgeml.monitoring.metrics import check_metric
    from forgeml.monitoring.sources import parse_window

    seen: set[str] = set()
    notifier_names = set(settings.notifiers or ()) or {"log"}
    for i, rule in enumerate(settings.rules or ()):
        where = f"{prefix}[[monitoring.rules]] #{i + 1} ({rule.name!r})"
        if rule.name in seen:
            raise ValidationError(f"{where}: two rules are named {rule.name!r}; rule names must be unique")
        seen.add(rule.name)
        check_metric(rule.metric, where)
        if rule.op not in OPERATORS:
            raise ValidationError(f"{where}: op must be one of {', '.join(OPERATORS)}, got {rule.op!r}")
        if rule.severity not in SEVERITIES:
            raise ValidationError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {rule.severity!r}")
        try:
            parse_window(rule.window)
        except ValidationError as e:
            raise ValidationError(f"{where}: {e}") from e
        if not rule.model:
            raise ValidationError(f"{where}: set `model` to the model whose prediction log it watches")
        for name in rule.notifiers:
            if name not in notifier_names:
                from forgeml.errors import did_you_mean

                raise ValidationError(f"{where}: unknown notifier {name!r}{did_you_mean(name, notifier_names)}; "
                                      f"configured: {', '.join(sorted(notifier_names))}")


def notifiers(workspace: Any = None) -> dict[str, Any]:
    """Build the configured notifiers by name ([monitoring.notifiers.NAME]); the log notifier when none are."""
    ws = _ws(workspace)
    tables = ws.config.section("monitoring").notifiers or {"log": {"plugin": "log"}}
    return {name: provider.build(settings, ws)
            for name, (provider, settings) in configured_notifiers(ws.plugins, tables).items()}


def configured_notifiers(host: Any, tables: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Resolve [monitoring.notifiers.NAME] tables to (provider, validated settings), by name."""
    from forgeml.selection import configure

    out = {}
    for name, table in tables.items():
        where = f"{prefix}[monitoring.notifiers.{name}]"
        if not isinstance(table, dict) or not isinstance(table.get("plugin"), str):
            raise ValidationError(f"{where}: set plugin = \"log\", \"shell\", \"webhook\" or \"desktop\"")
        out[name] = configure(host, "notifiers", table["plugin"], {k: v for k, v in table.items() if k != "plugin"},
                              where)
    return out


# ---------------------------------------------------------------- evaluation
def evaluate(workspace: Any = None, now: datetime | None = None, only: Sequence[str] | None = None) -> list[RuleOutcome]:
    """Evaluate every alert rule once at ``now`` (default: the current time); a broken rule does not stop the rest."""
    from forgeml.monitoring.metrics import compute
    from forgeml.monitoring.sources import as_utc, parse_window

    ws = _ws(workspace)
    now = as_utc(now) or datetime.now(UTC)
    all_rules = rules(ws)
    if only:
        unknown = [n for n in only if n not in {r.name for r in all_rules}]
        if unknown:
            from forgeml.errors import unknown_name

            raise unknown_name("alert rule", unknown[0], [r.name for r in all_rules])
        all_rules = [r for r in all_rules if r.name in only]
    outcomes = []
    for rule in all_rules:
        start = now - parse_window(rule.window)
        try:
            value, details = compute(rule.metric, ws, rule, start, now)
        except ForgeError as e:
            outcomes.append(_record(ws, RuleOutcome(rule.name, rule.model, rule.metric, None, "error", error=str(e)),
                                    now))
            continue
        details = {**details, "window_start": start.isoformat(), "window_end": now.isoformat()}
        if value is None or value != value:  # NaN: nothing measurable in the window
            outcomes.append(_record(ws, RuleOutcome(rule.name, rule.model, rule.metric, None, "no data"), now))
        elif _OPS[rule.op](value, rule.threshold):
            alert, new = fire(ws, rule, value, details, now)
            outcomes.append(_record(ws, RuleOutcome(rule.name, rule.model, rule.metric, value,
                                                    "fired" if new else "ongoing", alert), now))
        else:
            resolved = _resolve(ws, rule.name, rule.model, now)
            outcomes.append(_record(ws, RuleOutcome(rule.name, rule.model, rule.metric, value,
                                                    "resolved" if resolved else "ok", resolved), now))
    return outcomes


def _record(ws: Any, outcome: RuleOutcome, now: datetime) -> RuleOutcome:
    schema.store(ws).execute(
        "INSERT INTO monitoring_evaluations (rule, subject, at, value, outcome, alert_id, error) VALUES (?,?,?,?,?,?,?)",
        (outcome.rule, outcome.subject, now.timestamp(), outcome.value, outcome.outcome,
         outcome.alert.id if outcome.alert else None, outcome.error or None))
    return outcome


def fire(ws: Any, rule: AlertRule, value: float, details: dict[str, Any], now: datetime) -> tuple[Alert, bool]:
    """Store an alert for a firing rule (or bump the unresolved one); deliver and announce only a new one."""
    from forgeml.pii.tags import kept_out, redact

    details = redact(details, kept_out(ws))
    store = schema.store(ws)
    at = now.timestamp()
    message = (f"{rule.name}: {rule.metric} of {rule.model} is {value:.4g} ({rule.op} {rule.threshold:g}) "
               f"over the last {rule.window}")
    with store.transaction() as tx:
        rows = tx.query("SELECT id FROM monitoring_alerts WHERE rule = ? AND subject = ? AND status != 'resolved'",
                        (rule.name, rule.model))
        if rows:
            tx.execute("UPDATE monitoring_alerts SET last_seen_at = ?, occurrences = occurrences + 1, value = ? "
                       "WHERE id = ?", (at, value, rows[0]["id"]))
            alert_id, new = rows[0]["id"], False
        else:
            alert_id = tx.execute(
                "INSERT INTO monitoring_alerts (rule, subject, metric, value, threshold, op, severity, status, message,"
                " pipeline, details, fired_at, last_seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (rule.name, rule.model, rule.metric, value, rule.threshold, rule.op, rule.severity, "open", message,
                 rule.pipeline or None, json.dumps(details, default=str), at, at)).scalar()
            new = True
    alert = get_alert(alert_id, ws)
    if new:
        alert.deliveries = deliver(ws, alert, rule.notifiers)
        store.execute("UPDATE monitoring_alerts SET deliveries = ? WHERE id = ?",
                      (json.dumps(alert.deliveries), alert.id))
        ws.plugins.on_alert_fired(alert=alert, workspace=ws)
    return alert, new


def deliver(ws: Any, alert: Alert, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Send an alert to the named notifiers (all when empty); a failing one is recorded, not raised."""
    payload = alert.to_dict()
    results = []
    for name, notifier in notifiers(ws).items():
        if names and name not in names:
            continue
        started = time.perf_counter()
        try:
            notifier.notify(payload)
        except ForgeError as e:
            log.warning("alert %s: notifier %s failed: %s", alert.id, name, e)
            results.append({"notifier": name, "ok": False, "error": str(e)})
            continue
        except Exception as e:  # a third-party notifier broke its contract; the others must still deliver
            log.warning("alert %s: notifier %s raised %s: %s", alert.id, name, type(e).__name__, e)
            results.append({"notifier": name, "ok": False, "error": f"{type(e).__name__}: {e}"})
            continue
        results.append({"notifier": name, "ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)})
    return results


def _resolve(ws: Any, rule: str, subject: str, now: datetime) -> Alert | None:
    store = schema.store(ws)
    rows = store.query("SELECT id FROM monitoring_alerts WHERE rule = ? AND subject = ? AND status != 'resolved'",
                       (rule, subject))
    if not rows:
        return None
    store.execute("UPDATE monitoring_alerts SET status = 'resolved', resolved_at = ? WHERE id = ?",
                  (now.timestamp(), rows[0]["id"]))
    return get_alert(rows[0]["id"], ws)


# ---------------------------------------------------------------- reading and acknowledging
def get_alert(alert_id: int, workspace: Any = None) -> Alert:
    """Return one alert or raise NotFoundError."""
    rows = schema.store(_ws(workspace)).query("SELECT * FROM monitoring_alerts WHERE id = ?", (int(alert_id),))
    if not rows:
        raise NotFoundError(f"no alert with id {alert_id}; list them with `forgeml monitor alerts ls --all`")
    return _alert(rows[0])


def add_details(alert_id: int, extra: dict[str, Any], workspace: Any = None) -> Alert:
    """Merge extra keys into an alert's stored details (what listeners learned after it fired)."""
    from forgeml.pii.tags import kept_out, redact

    ws = _ws(workspace)
    extra = redact(extra, kept_out(ws))
    store = schema.store(ws)
    with store.transaction() as tx:
        rows = tx.query("SELECT details FROM monitoring_alerts WHERE id = ?", (int(alert_id),))
        if not rows:
            raise NotFoundError(f"no alert with id {alert_id}")
        details = {**json.loads(rows[0]["details"] or "{}"), **extra}
        tx.execute("UPDATE monitoring_alerts SET details = ? WHERE id = ?",
                   (json.dumps(details, default=str), int(alert_id)))
    return get_alert(alert_id, workspace)


def list_alerts(status: str | None = None, rule: str | None = None, limit: int = 100,
                workspace: Any = None) -> list[Alert]:
    """Return alerts, newest first; status is open, acknowledged, resolved, or None for unresolved ones."""
    where, params = [], []
    if status is None:
        where.append("status != 'resolved'")
    elif status != "all":
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {', '.join(STATUSES)} or all, got {status!r}")
        where.append("status = ?")
        params.append(status)
    if rule:
        where.append("rule = ?")
        params.append(rule)
    sql = "SELECT * FROM monitoring_alerts" + (" WHERE " + " AND ".join(where) if where else "")
    rows = schema.store(_ws(workspace)).query(sql + " ORDER BY fired_at DESC, id DESC LIMIT ?", (*params, limit))
    return [_alert(r) for r in rows]


def acknowledge(alert_id: int, actor: str = "", workspace: Any = None) -> Alert:
    """Mark an unresolved alert acknowledged (it stays de-duplicated until its rule clears)."""
    from forgeml.auth.service import require

    ws = _ws(workspace)
    acting = require("alerts.ack", workspace=ws, subject=f"alerts/{alert_id}")
    alert = get_alert(alert_id, ws)
    if alert.status == "resolved":
        raise ValidationError(f"alert {alert_id} is already resolved; nothing to acknowledge")
    if alert.status == "acknowledged":
        return alert
    import getpass

    who = actor or (acting.name if acting.kind != "local" else getpass.getuser())
    schema.store(ws).execute("UPDATE monitoring_alerts SET status = 'acknowledged', acknowledged_at = ?, "
                             "acknowledged_by = ? WHERE id = ? AND status = 'open'", (time.time(), who, alert.id))
    return get_alert(alert.id, ws)
