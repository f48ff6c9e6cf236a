"""Retention: per-kind age limits applied by ``forgeml gc`` (with a dry run), and unreferenced artifacts reclaimed.

An artifact object counts as referenced when its digest appears anywhere in the metadata store's
text columns (runs, model versions, dataset versions, pipeline caches, evaluations...), so a layer
added later is covered without being listed here; a grace period spares objects whose reference is
still being written.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.auth.service import resolve_workspace
from forgeml.errors import ForgeError

DIGEST = re.compile(r"[0-9a-f]{64}")
DAY_S = 86400.0


@dataclass
class RetentionReport:
    """What a gc pass removed, or would remove on a dry run."""

    dry_run: bool
    prediction_log_days: list[str] = field(default_factory=list)
    stream_event_days: list[str] = field(default_factory=list)
    window_states: dict[str, int] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    archived_model_artifacts: list[str] = field(default_factory=list)
    unreferenced_artifacts: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)


def collect_garbage(dry_run: bool = False, now: float | None = None, workspace: Any = None,
                    trigger: str = "command") -> RetentionReport:
    """Apply the [privacy.retention] limits; with dry_run only report what would go.

    Every real run (``trigger`` "command" or "schedule") is kept as the last run and written to the
    audit log, a failed one with its error.
    """
    ws = resolve_workspace(workspace)
    now = time.time() if now is None else now
    if dry_run:
        return _apply(ws, RetentionReport(dry_run), now)
    try:
        report = _apply(ws, RetentionReport(dry_run), now)
    except ForgeError as e:
        _record(ws, now, trigger, None, str(e))
        raise
    _record(ws, now, trigger, report, None)
    return report


def run_if_due(workspace: Any, now: float | None = None) -> RetentionReport | None:
    """Apply the limits when ``every_hours`` is set and that long has passed since the last run (any trigger)."""
    from forgeml.privacy.schema import last_retention_run

    now = time.time() if now is None else now
    every = workspace.config.section("privacy").retention.every_hours
    if not every:
        return None
    last = last_retention_run(workspace)
    if last is not None and now < last["at"] + every * 3600.0:
        return None
    return collect_garbage(now=now, workspace=workspace, trigger="schedule")


def schedule_status(workspace: Any = None, now: float | None = None) -> dict[str, Any]:
    """Return the retention schedule: its interval, the last run, the next one, and whether a scheduler runs."""
    from forgeml.jobs.wake import SchedulerLock
    from forgeml.privacy.schema import last_retention_run

    ws = resolve_workspace(workspace)
    now = time.time() if now is None else now
    every = ws.config.section("privacy").retention.every_hours
    last = last_retention_run(ws)
    holder = SchedulerLock(ws).holder()
    next_at = None if not every else max(now, last["at"] + every * 3600.0) if last else now
    return {"every_hours": every, "last_run": last, "next_run_at": next_at, "scheduler_pid": holder,
            "note": "not scheduled: set [privacy.retention] every_hours" if not every else
            "" if holder else "no scheduler runs for this workspace: start `forgeml scheduler --detach`"}


def _apply(ws: Any, report: RetentionReport, now: float) -> RetentionReport:
    limits = ws.config.section("privacy").retention
    if limits.prediction_logs_days:
        _prediction_logs(ws, now - limits.prediction_logs_days * DAY_S, report)
    if limits.runs_days:
        _runs(ws, now - limits.runs_days * DAY_S, report)
    if limits.archived_model_artifacts_days:
        _archived_models(ws, now - limits.archived_model_artifacts_days * DAY_S, report)
    if limits.unreferenced_artifacts_hours:
        _unreferenced(ws, now - limits.unreferenced_artifacts_hours * 3600.0, report)
    if limits.stream_events_days or limits.window_state_days:
        from forgeml.privacy.stream_retention import expire_stream_data

        expire_stream_data(ws, now, limits.stream_events_days, limits.window_state_days, report)
    return report


def _prediction_logs(ws: Any, cutoff: float, report: RetentionReport) -> None:
    import shutil

    from forgeml.serving.predlog import log_root

    root = log_root(ws)
    last_day = dt.datetime.fromtimestamp(cutoff, dt.UTC).date()
    for folder in sorted(root.glob("model=*/date=*")) if root.is_dir() else []:
        try:
            day = dt.date.fromisoformat(folder.name.split("=", 1)[1])
        except ValueError:
            continue  # not a day folder the logger wrote
        if day < last_day:  # the whole day ended before the cutoff's day began
            report.prediction_log_days.append(folder.relative_to(root).as_posix())
            report.bytes += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            if not report.dry_run:
                shutil.rmtree(folder)


def _runs(ws: Any, cutoff: float, report: RetentionReport) -> None:
    if not ws.metadata.applied_migrations("tracking"):
        return
    from forgeml.tracking.api import purge_runs
    from forgeml.tracking.store import tracking_store

    report.runs = tracking_store(ws).ended_before(cutoff)
    if report.runs and not report.dry_run:
        purge_runs(report.runs, workspace=ws)


def _archived_models(ws: Any, cutoff: float, report: RetentionReport) -> None:
    if not ws.metadata.applied_migrations("registry"):
        return
    from forgeml.registry.store import all_versions

    rows = all_versions(ws.metadata, "name", "version", "artifact_digest", "stage", "stage_changed_at")
    live = {r["artifact_digest"] for r in rows if r["stage"] != "ARCHIVED" or r["stage_changed_at"] >= cutoff}
    old = [r for r in rows if r["stage"] == "ARCHIVED" and r["stage_changed_at"] < cutoff]
    gone = sorted({r["artifact_digest"] for r in old} - live)
    report.archived_model_artifacts = [f"{r['name']}@{r['version']}" for r in old
                                       if r["artifact_digest"] in gone and ws.artifacts.exists(r["artifact_digest"])]
    if not report.dry_run:
        from forgeml.pii.purge import purge_objects

        purge_objects(ws, [d for d in gone if ws.artifacts.exists(d)])


def referenced_digests(ws: Any) -> set[str]:
    """Return every sha256 digest written anywhere in the metadata store's text columns."""
    import sqlalchemy as sa

    found: set[str] = set()
    inspector = sa.inspect(ws.metadata.engine)
    for table in inspector.get_table_names(schema=getattr(ws.metadata, "schema", None)):
        columns = [c["name"] for c in inspector.get_columns(table, schema=getattr(ws.metadata, "schema", None))
                   if isinstance(c["type"], sa.String | sa.Text)]
        if not columns:
            continue
        statement = sa.select(*(sa.column(c) for c in columns)).select_from(
            sa.table(table, schema=getattr(ws.metadata, "schema", None)))
        for batch in ws.metadata.stream(statement):
            for row in batch:
                for value in row:
                    if value and len(value) >= 64:
                        found.update(DIGEST.findall(value))
    return found


def _unreferenced(ws: Any, cutoff: float, report: RetentionReport) -> None:
    referenced = referenced_digests(ws)
    candidates = [info for info in ws.artifacts.list() if info.digest not in referenced]
    stale = [info for info in candidates if _age_ok(ws.artifacts, info.digest, cutoff)]
    report.unreferenced_artifacts = [i.digest for i in stale]
    report.bytes += sum(i.size for i in stale)
    if stale and not report.dry_run:
        from forgeml.pii.purge import purge_objects

        purge_objects(ws, report.unreferenced_artifacts)


def _age_ok(artifacts: Any, digest: str, cutoff: float) -> bool:
    """Return whether an object was written before the cutoff (its file's modification time)."""
    path = artifacts._path(digest) if hasattr(artifacts, "_path") else None
    if path is None:
        return False  # a store that cannot tell an object's age keeps it
    try:
        if "://" not in path:
            return Path(path).stat().st_mtime < cutoff
        modified = artifacts.fs.modified(path)
        return modified.timestamp() < cutoff
    except (OSError, NotImplementedError, ForgeError):
        return False


def _record(ws: Any, now: float, trigger: str, report: RetentionReport | None, error: str | None) -> None:
    import json

    from forgeml.auth.service import current_principal
    from forgeml.auth.store import auth_db, write_access
    from forgeml.privacy.schema import save_retention_run

    run: dict[str, Any] = {"at": now, "trigger": trigger}
    if report is not None:
        run["counts"] = {"prediction_log_days": len(report.prediction_log_days), "runs": len(report.runs),
                         "stream_event_days": len(report.stream_event_days),
                         "window_states": sum(report.window_states.values()),
                         "archived_model_artifacts": len(report.archived_model_artifacts),
                         "unreferenced_artifacts": len(report.unreferenced_artifacts), "bytes": report.bytes}
    if error is not None:
        run["error"] = error
    save_retention_run(ws, run)
    write_access(auth_db(ws), [(time.time(), current_principal(ws).name, "privacy.retention", "gc", json.dumps(run))])
