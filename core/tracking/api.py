"""The tracking API: start runs, log to the active one, and read runs back."""

from __future__ import annotations

import atexit
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.auth.service import require
from forgeml.client import remote
from forgeml.errors import StorageError, ValidationError
from forgeml.paths import safe_component
from forgeml.tracking import active as _active_mod
from forgeml.tracking.active import ActiveRun, current_stack, push
from forgeml.tracking.context import DIFF_ARTIFACT, capture
from forgeml.tracking.liveness import owner
from forgeml.tracking.records import END_STATUSES, FINISHED, RUNNING, SCHEDULED, STATUSES, ArtifactRecord, Run
from forgeml.tracking.store import TrackingStore, tracking_store

if TYPE_CHECKING:
    import pandas as pd

RUN_ID_ENV = "FORGEML_RUN_ID"


def _store(workspace: Any = None) -> TrackingStore:
    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    return tracking_store(workspace)


def _run_id(run: Run | str | None) -> str | None:
    return run.id if isinstance(run, Run) else run


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


# ------------------------------------------------------------------ starting and ending
def start_run(name: str | None = None, experiment: str | None = None, tags: Mapping[str, Any] | None = None,
              parent: Run | str | None = None, *, run_id: str | None = None, workspace: Any = None,
              system_metrics: bool | None = None, capture_context: bool = True) -> ActiveRun:
    """Start (or attach to) a run and make it active; use it as a context manager to end it.

    Inside a job launched by forgeml, FORGEML_RUN_ID names the run to attach to. A run started while
    another is active becomes its child. The block's exit sets the status: FINISHED, FAILED on an
    exception, KILLED on KeyboardInterrupt.
    """
    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import start_run as start_remote

        return start_remote(client, name, experiment, tags, parent, run_id)  # type: ignore[return-value]
    store = _store(workspace)
    stack = current_stack()
    attach_id = run_id or (os.environ.get(RUN_ID_ENV) if not stack and parent is None else None)
    if attach_id:
        run = _attach(store, attach_id, name, experiment, tags, capture_context)
    else:
        require("runs.write", workspace=store.workspace, subject="runs")
        parent_id = store.resolve_id(_run_id(parent)) if parent is not None else (stack[-1].id if stack else None)
        if experiment is None:
            experiment = store.get_run(parent_id).experiment if parent_id else "default"
        run = ActiveRun(id=uuid.uuid4().hex, name=name, experiment=experiment, status=RUNNING,
                        start_time=time.time(), tags=dict(tags or {}), parent_id=parent_id)
        run.bind(store)
        diff = None
        if capture_context:
            run.context, diff = capture(store.workspace, store.settings)
        else:
            run.context = owner()
        store.insert_run(run)
        run.tags = {str(k): str(v) for k, v in run.tags.items()}
        if diff:
            run.log_bytes(diff, DIFF_ARTIFACT)
    run._seq = store.seq(run.id)
    push(run)
    sample = store.settings.system_metrics if system_metrics is None else system_metrics
    if sample and run.parent_id is None and _is_rank_zero():
        from forgeml.tracking.system import SystemSampler

        run._sampler = SystemSampler(store.workspace, lambda values, step: run.log_metrics(values, step=step),
                                     store.settings.system_metrics_interval_s)
        run._sampler.start()
    return run


def _create_for_attach(store: TrackingStore, run_id: str, name: str | None, experiment: str | None,
                       tags: Mapping[str, Any] | None, capture_context: bool) -> ActiveRun | None:
    """Create the run to attach to; return None when another process created it first (attach to theirs)."""
    run = ActiveRun(id=run_id, name=name, experiment=experiment or "default", status=RUNNING,
                    start_time=time.time(), tags={str(k): str(v) for k, v in (tags or {}).items()},
                    job_id=os.environ.get("FORGEML_JOB_ID"))
    run.bind(store, finishes=_is_rank_zero())
    if capture_context:
        run.context, diff = capture(store.workspace, store.settings)
    else:
        run.context = owner()
    try:
        run._seq = store.insert_run(run)
    except StorageError:
        if store.run_exists(run_id):  # several processes attached at once: one created it
            return None
        raise
    if capture_context and diff:
        run.log_bytes(diff, DIFF_ARTIFACT)
    return run


def _attach(store: TrackingStore, run_id: str, name: str | None, experiment: str | None,
            tags: Mapping[str, Any] | None, capture_context: bool) -> ActiveRun:
    """Attach to a run created for this process (a job's run), creating it when this workspace lacks it."""
    run_id = safe_component(run_id, "run id")
    created = None if store.run_exists(run_id) else _create_for_attach(store, run_id, name, experiment, tags,
                                                                     capture_context)
    if created is not None:
        return created
    stored = store.get_run(run_id)
    run = ActiveRun(**{f: getattr(stored, f) for f in Run.__dataclass_fields__})
    run.bind(store, finishes=_is_rank_zero())
    updates: dict[str, Any] = {}
    if run.status in (SCHEDULED, *END_STATUSES) and _is_rank_zero():
        updates.update(status=RUNNING, end_time=None)
        run.status, run.end_time = RUNNING, None
    if name and not run.name:
        updates["name"] = run.name = name
    diff = None
    if capture_context and "argv" not in run.context and _is_rank_zero():
        captured, diff = capture(store.workspace, store.settings)
        run.context = {**captured, **run.context}
        updates["context"] = run.context
    if updates:
        store.update_run(run.id, **updates)
    if tags:
        run.set_tags(tags)
    if diff:
        run.log_bytes(diff, DIFF_ARTIFACT)
    return run


def active_run() -> ActiveRun | None:
    """Return the innermost active run of this process, or None."""
    stack = _active_mod._stack
    return stack[-1] if stack else None


def _active() -> ActiveRun:
    stack = _active_mod._stack
    if stack:
        return stack[-1]
    # like MLflow: logging with no active run starts one (inside a job it attaches to the job's run)
    return start_run()


def end_run(status: str = FINISHED) -> None:
    """End the innermost active run with a status (FINISHED, FAILED or KILLED)."""
    run = active_run()
    if run is not None:
        run.end(status)


def create_run(name: str | None = None, experiment: str = "default", tags: Mapping[str, Any] | None = None,
               parent: Run | str | None = None, job_id: str | None = None, *, params: Mapping[str, Any] | None = None,
               status: str = RUNNING, workspace: Any = None) -> Run:
    """Create a run on behalf of other code (scheduler, tuning) without making it active here."""
    if status not in (RUNNING, SCHEDULED):
        raise ValidationError(f"a new run's status is RUNNING or SCHEDULED, not {status!r}")
    store = _store(workspace)
    require("runs.write", workspace=store.workspace, subject="runs")
    parent_id = _run_id(parent)
    if parent_id is not None:
        parent_id = store.resolve_id(parent_id)
    run = Run(id=uuid.uuid4().hex, name=name, experiment=experiment or "default", status=status,
              start_time=time.time(), params={str(k): str(v) for k, v in (params or {}).items()},
              tags={str(k): str(v) for k, v in (tags or {}).items()}, parent_id=parent_id, job_id=job_id)
    store.insert_run(Run(**{**run.__dict__, "params": dict(params or {})}))
    return run


def finish_run(run_id: str, status: str = FINISHED, *, workspace: Any = None, flush: bool = True) -> Run:
    """Record a run's end status and time, then announce it (a repeat with the same status does nothing)."""
    if status not in END_STATUSES:
        raise ValidationError(f"end status must be one of {', '.join(END_STATUSES)}, not {status!r}")
    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    if flush:
        store.writer.flush()
    before = store.get_run(run_id)
    if before.status == status and before.end_time is not None:
        return before
    store.update_run(run_id, status=status, end_time=time.time())
    run = store.get_run(run_id)
    store.workspace.plugins.on_run_finished(run=run, workspace=store.workspace)
    return run


# ------------------------------------------------------------------ logging to the active run
def log_metric(key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
    """Log one metric point to the active run (buffered: returns in microseconds)."""
    stack = _active_mod._stack
    (stack[-1] if stack else _active()).log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None) -> None:
    """Log several metric points at one step to the active run."""
    _active().log_metrics(metrics, step, timestamp)


def log_param(key: str, value: Any) -> None:
    """Record one param of the active run."""
    _active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Record params of the active run."""
    _active().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set one tag of the active run."""
    _active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags of the active run."""
    _active().set_tags(tags)


def log_input(dataset: str | None = None, feature_view: str | None = None, **refs: str) -> None:
    """Record what the active run read, e.g. dataset="name@v3", feature_view="view@2"."""
    _active().log_input(dataset, feature_view, **refs)


def log_artifact(path: str | Path, name: str | None = None) -> list[ArtifactRecord]:
    """Store a file or folder as artifacts of the active run."""
    return _active().log_artifact(path, name)


def log_dict(value: Any, name: str) -> ArtifactRecord:
    """Store a dict as a JSON (or YAML) artifact of the active run."""
    return _active().log_dict(value, name)


def log_text(text: str, name: str) -> ArtifactRecord:
    """Store text as an artifact of the active run."""
    return _active().log_text(text, name)


def log_throughput(samples: float, seconds: float | None = None, step: int | None = None,
                   key: str = "throughput/samples_per_s") -> float:
    """Log samples per second to the active run and return the rate."""
    return _active().log_throughput(samples, seconds, step, key)


def flush(workspace: Any = None) -> int:
    """Write every buffered metric point of this process now; return how many were written."""
    stack = _active_mod._stack
    if workspace is None and stack:
        return stack[-1].flush()
    if workspace is None and remote() is not None:
        return 0  # remote runs flush themselves; nothing is buffered for local files
    return _store(workspace).writer.flush()


# ------------------------------------------------------------------ reading
def get_run(run_id: str, workspace: Any = None) -> Run:
    """Return a run (id or unique id prefix) with params, tags, latest metrics and inputs."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import get_run as get_remote

        return get_remote(client, run_id)
    return _store(workspace).get_run(run_id)


def search_runs(query: str = "", *, experiments: Sequence[str] | None = None, include_deleted: bool = False,
                limit: int | None = None, workspace: Any = None) -> pd.DataFrame:
    """Search runs with the query language (see forgeml.tracking.query); return a pandas DataFrame."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import search_runs as search_remote

        return search_remote(client, query, experiments, include_deleted, limit)
    from forgeml.tracking.search import search

    return search(_store(workspace), query, include_deleted=include_deleted, experiments=experiments, limit=limit)


def get_metric_history(run_id: str, key: str, workspace: Any = None) -> pd.DataFrame:
    """Return every point of one metric of a run as a DataFrame (step, timestamp, value)."""
    from forgeml.tracking.reading import history_frame

    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import metric_history

        return metric_history(client, run_id, key)
    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    if store.writer.pending():
        store.writer.flush()
    rows = store.metric_history(run_id, key)
    return history_frame([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def list_artifacts(run_id: str, workspace: Any = None) -> list[ArtifactRecord]:
    """Return a run's artifacts."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import list_artifacts as list_remote

        return list_remote(client, run_id)
    store = _store(workspace)
    return store.artifacts(store.resolve_id(run_id))


def download_artifacts(run_id: str, dest: str | Path, path: str | None = None, workspace: Any = None) -> list[Path]:
    """Copy a run's artifacts (all, one file, or one folder by path prefix) under dest; return the files."""
    from forgeml.tracking.reading import place_artifacts, select_artifacts

    if workspace is None and (client := remote()) is not None:
        from forgeml.tracking.remote import download_artifacts as download_remote

        return download_remote(client, run_id, dest, path)
    store = _store(workspace)
    records = select_artifacts(store.artifacts(store.resolve_id(run_id)), run_id, path)
    # every file is fetched (and verified) beside its place first, then all are renamed into place:
    # a corrupt or missing object leaves none of the download behind
    return place_artifacts(records, dest, lambda r, part: store.workspace.artifacts.get_file(r.digest, part))


def delete_runs(run_ids: Sequence[str], workspace: Any = None) -> int:
    """Hide runs from search and listings (restore_runs brings them back); return how many changed."""
    store = _store(workspace)
    return store.set_deleted([store.resolve_id(r) for r in run_ids], True)


def purge_runs(run_ids: Sequence[str], workspace: Any = None) -> int:
    """Remove runs and everything logged to them for good (their artifact objects stay); return how many."""
    store = _store(workspace)
    return store.purge([store.resolve_id(r) for r in run_ids])


def restore_runs(run_ids: Sequence[str], workspace: Any = None) -> int:
    """Bring deleted runs back; return how many changed."""
    store = _store(workspace)
    return store.set_deleted([store.resolve_id(r) for r in run_ids], False)


def valid_status(status: str) -> str:
    """Return a status upper-cased, or raise a ValidationError listing the statuses."""
    value = status.upper()
    if value not in STATUSES:
        raise ValidationError(f"unknown run status {status!r}; statuses: {', '.join(STATUSES)}")
    return value


atexit.register(_active_mod.end_owned_runs_at_exit)
os.register_at_fork(after_in_child=_active_mod._after_fork_in_child)
