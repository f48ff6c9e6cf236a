"""Triggers: cron schedules, new data (dataset versions, feature materializations) and alerts start pipelines.

Every start is recorded in ``pipeline_trigger_events`` with its cause, whether it ran, was skipped or
failed to start. Cron triggers are evaluated by :class:`CronTriggers` under an injectable clock; the
event triggers run from the pipelines plugin's hook implementations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from forgeml.errors import ForgeError, ValidationError
from forgeml.pipelines import schema
from forgeml.pipelines.settings import STRATEGIES

log = logging.getLogger("forgeml.pipelines")
Clock = Callable[[], datetime]
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Trigger:
    """One reason a pipeline starts: kind cron, dataset, features or alert, and its condition."""

    name: str
    pipeline: str
    kind: str
    condition: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    origin: str = "triggers"


def _check_cron(expr: str, where: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(expr):
        raise ValidationError(f"{where}: {expr!r} is not a valid cron expression (e.g. \"0 3 * * *\")")


def triggers(workspace: Any) -> list[Trigger]:
    """Return every trigger from [[pipelines.triggers]] and [pipelines.retraining.MODEL], validated."""
    settings = workspace.config.section("pipelines")
    if settings.trigger_mode not in ("inline", "job"):
        raise ValidationError(f"[pipelines] trigger_mode must be inline or job, got {settings.trigger_mode!r}")
    found: list[Trigger] = []
    for i, t in enumerate(settings.triggers or ()):
        where = f"[[pipelines.triggers]] #{i + 1}"
        conditions = [(k, v) for k, v in (("cron", t.cron), ("dataset", t.on_dataset),
                                          ("features", t.on_feature_view)) if v]
        if len(conditions) != 1:
            raise ValidationError(f"{where}: set exactly one of cron, on_dataset, on_feature_view")
        kind, condition = conditions[0]
        if kind == "cron":
            _check_cron(condition, where)
        found.append(Trigger(t.name or f"{t.pipeline}:{kind}:{condition}", t.pipeline, kind, condition,
                             dict(t.params)))
    for model, policy in (settings.retraining or {}).items():
        where = f"[pipelines.retraining.{model}]"
        origin = f"retraining:{model}"
        if policy.strategy not in STRATEGIES:
            from forgeml.errors import did_you_mean

            raise ValidationError(f"{where}: strategy must be one of {', '.join(STRATEGIES)}, got "
                                  f"{policy.strategy!r}{did_you_mean(policy.strategy, STRATEGIES)}")
        if policy.strategy == "scheduled":
            if not policy.cron:
                raise ValidationError(f"{where}: the scheduled strategy needs cron = \"...\"")
            _check_cron(policy.cron, where)
            found.append(Trigger(f"retrain:{model}:cron", policy.pipeline, "cron", policy.cron,
                                 dict(policy.params), origin))
        elif policy.strategy == "triggered":
            found.append(Trigger(f"retrain:{model}:alert", policy.pipeline, "alert", model, dict(policy.params), origin))
        else:
            if not policy.datasets and not policy.feature_views:
                raise ValidationError(f"{where}: the continuous strategy needs datasets or feature_views")
            for name in policy.datasets:
                found.append(Trigger(f"retrain:{model}:dataset:{name}", policy.pipeline, "dataset", name,
                                     dict(policy.params), origin))
            for name in policy.feature_views:
                found.append(Trigger(f"retrain:{model}:features:{name}", policy.pipeline, "features", name,
                                     dict(policy.params), origin))
    names = [t.name for t in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"two triggers are named {dupes[0]!r}; give them distinct `name`s")
    return found


# ---------------------------------------------------------------- starting pipelines
def start(workspace: Any, trigger: Trigger, cause: str) -> dict[str, Any]:
    """Start a trigger's pipeline (inline, or as a scheduler job) and record the start with its cause."""
    from forgeml.pipelines.runner import RUNNING_PIPELINES

    store = schema.store(workspace)
    event = {"trigger": trigger.name, "pipeline": trigger.pipeline, "cause": cause, "run_id": None,
             "status": "started", "error": None}
    if trigger.pipeline in RUNNING_PIPELINES.get():
        event.update(status="skipped", error="the pipeline is running in this process (its own output triggered it)")
    else:
        try:
            mode = workspace.config.section("pipelines").trigger_mode
            if mode == "job":
                event["run_id"] = _submit_job(workspace, trigger, cause)
                event["status"] = "submitted"
            else:
                from forgeml.pipelines.runner import run_pipeline

                run = run_pipeline(trigger.pipeline, trigger.params, cause=cause, workspace=workspace)
                event.update(run_id=run.id, status=run.status.lower(), error=run.error)
        except ForgeError as e:
            event.update(status="error", error=str(e))
            log.warning("trigger %s could not start pipeline %s: %s", trigger.name, trigger.pipeline, e)
        except Exception as e:  # the pipeline's own function raised while its graph was built: record it
            event.update(status="error", error=f"{type(e).__name__}: {e}")
            log.warning("trigger %s: pipeline %s failed to build: %s", trigger.name, trigger.pipeline, e)
    store.execute("INSERT INTO pipeline_trigger_events (trigger, pipeline, cause, at, run_id, status, error) "
                  "VALUES (?,?,?,?,?,?,?)", (trigger.name, trigger.pipeline, cause, time.time(), event["run_id"],
                                             event["status"], event["error"]))
    return event


def _submit_job(workspace: Any, trigger: Trigger, cause: str) -> str:
    import json
    import sys

    from forgeml.jobs import JobSpec, submit

    argv = [sys.executable, "-m", "forgeml", "pipeline", "run", trigger.pipeline, "--cause", cause,
            "--params", json.dumps(trigger.params)]
    return submit(JobSpec(command=argv, name=f"pipeline {trigger.pipeline}", workdir=str(workspace.root)),
                  workspace).id


def trigger_events(workspace: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Return recent trigger starts, newest first."""
    rows = schema.store(workspace).query("SELECT * FROM pipeline_trigger_events ORDER BY at DESC, id DESC LIMIT ?",
                                         (limit,))
    for r in rows:
        r["at"] = datetime.fromtimestamp(r["at"], UTC).isoformat(timespec="seconds")
    return rows


# ---------------------------------------------------------------- events
def _matches(condition: str, name: str) -> bool:
    return condition in ("*", name)


def on_dataset_version(workspace: Any, dataset_version: Any) -> list[dict[str, Any]]:
    """Start the pipelines waiting for a new version of this dataset."""
    name = getattr(dataset_version, "name", str(dataset_version))
    ref = f"{name}@v{getattr(dataset_version, 'version', '?')}"
    return [start(workspace, t, f"dataset:{ref}") for t in triggers(workspace)
            if t.kind == "dataset" and _matches(t.condition, name)]


def on_features(workspace: Any, view: str, start_at: Any, end_at: Any) -> list[dict[str, Any]]:
    """Start the pipelines waiting for this feature view's materializations."""
    return [start(workspace, t, f"features:{view}[{start_at}, {end_at})") for t in triggers(workspace)
            if t.kind == "features" and _matches(t.condition, view)]


def on_alert(workspace: Any, alert: Any) -> list[dict[str, Any]]:
    """Start the pipeline an alert rule names, and the model's retraining when its strategy is triggered."""
    cause = f"alert:{alert.id} rule {alert.rule}"
    started = []
    if alert.pipeline:
        started.append(start(workspace, Trigger(f"alert:{alert.rule}", alert.pipeline, "alert", alert.rule), cause))
    for t in triggers(workspace):
        if t.kind == "alert" and t.condition == alert.subject and t.pipeline != alert.pipeline:
            started.append(start(workspace, t, cause))
    return started


# ---------------------------------------------------------------- cron
class CronTriggers:
    """Evaluates cron triggers against a clock; a missed stretch fires once, not once per missed time."""

    def __init__(self, workspace: Any, clock: Clock | None = None):
        self.workspace = workspace
        self.clock = clock or (lambda: datetime.now(UTC))

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    @staticmethod
    def _key(t: Trigger) -> str:
        # a changed expression starts a fresh schedule instead of inheriting the old one's due time
        return f"{t.name}|{t.condition}"

    def next_times(self) -> dict[str, datetime]:
        """Return each cron trigger's next due time (scheduling the ones seen for the first time)."""
        self.tick(start_pipelines=False)
        rows = schema.store(self.workspace).query("SELECT trigger, next_due FROM pipeline_trigger_state")
        due = {r["trigger"]: r["next_due"] for r in rows}
        return {t.name: datetime.fromtimestamp(due[self._key(t)], UTC)
                for t in triggers(self.workspace) if t.kind == "cron" and self._key(t) in due}

    def tick(self, start_pipelines: bool = True) -> list[dict[str, Any]]:
        """Start every cron trigger that is due now; return the starts."""
        from croniter import croniter

        store = schema.store(self.workspace)
        now = self._now()
        started = []
        for t in triggers(self.workspace):
            if t.kind != "cron":
                continue
            key = self._key(t)
            rows = store.query("SELECT next_due FROM pipeline_trigger_state WHERE trigger = ?", (key,))
            if not rows:
                # first sight: times at or after now are due; earlier ones were never promised
                first = croniter(t.condition, now + _SECOND).get_prev(datetime)
                nxt = now if first == now else croniter(t.condition, now).get_next(datetime)
                with store.transaction() as tx:
                    tx.insert_or_ignore("pipeline_trigger_state", ("trigger", "next_due"), [(key, nxt.timestamp())])
                rows = [{"next_due": nxt.timestamp()}]
            due = rows[0]["next_due"]
            if not start_pipelines or now.timestamp() < due:
                continue
            # the latest scheduled time not after now; earlier missed times coalesce into this one start
            scheduled = croniter(t.condition, now + _SECOND).get_prev(datetime)
            missed = 0
            it = croniter(t.condition, datetime.fromtimestamp(due, UTC))
            probe = datetime.fromtimestamp(due, UTC)
            while probe < scheduled and missed < 1000:
                missed += 1
                probe = it.get_next(datetime)
            following = croniter(t.condition, now).get_next(datetime)
            claimed = store.execute("UPDATE pipeline_trigger_state SET next_due = ?, last_fired = ? "
                                    "WHERE trigger = ? AND next_due = ?",
                                    (following.timestamp(), now.timestamp(), key, due))
            if claimed != 1:
                continue  # another process fired it first
            cause = f"cron:{t.condition} at {scheduled.isoformat()}" + (f" ({missed} missed)" if missed else "")
            started.append(start(self.workspace, t, cause))
        return started

    def watch(self, sleep: Callable[[float], None] = time.sleep, stop: Callable[[], bool] = lambda: False,
              poll_s: float = 15.0) -> None:
        """Tick until stop() says so, sleeping poll_s between ticks."""
        while not stop():
            self.tick()
            sleep(poll_s)
