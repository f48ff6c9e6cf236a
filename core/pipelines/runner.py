"""Run a pipeline: steps in dependency order, cached outputs reused, retries with backoff, history recorded."""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import JobError, NotFoundError
from forgeml.pipelines import cache, schema
from forgeml.pipelines.dsl import Node, Pipeline, StepOutput, get_pipeline, placeholders

RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"
PENDING, CACHED, SKIPPED = "PENDING", "CACHED", "SKIPPED"
DONE = (SUCCEEDED, CACHED)

# pipelines running in this process (a new-data trigger must not restart the pipeline that made the data)
RUNNING_PIPELINES: ContextVar[frozenset[str]] = ContextVar("forgeml_running_pipelines", default=frozenset())


@dataclass
class StepRun:
    """One step of one pipeline run: its state, attempts, timing, cache key and output."""

    node: str
    step: str
    state: str
    upstream: list[str] = field(default_factory=list)
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    cache_key: str | None = None
    output_digest: str | None = None
    output_format: str | None = None
    job_id: str | None = None
    error: str | None = None


@dataclass
class PipelineRun:
    """A pipeline run: status, what started it, parameters, and each step's record."""

    id: str
    pipeline: str
    status: str
    cause: str
    params: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    steps: list[StepRun] = field(default_factory=list)

    def step(self, node: str) -> StepRun:
        """Return one step's record by node name."""
        for s in self.steps:
            if s.node == node:
                return s
        from forgeml.errors import unknown_name

        raise unknown_name("step", node, [s.node for s in self.steps], f"pipeline run {self.id}")

    def output(self, node: str, workspace: Any = None) -> Any:
        """Load a finished step's output from the artifact store."""
        s = self.step(node)
        if s.output_digest is None:
            raise NotFoundError(f"step {node!r} of run {self.id} has no output (state {s.state})")
        return cache.load_output(_ws(workspace), cache.StoredOutput(s.output_digest, s.output_format or "pickle"))

    def report(self) -> str:
        """A readable summary: one line per step, and the failing step's error."""
        lines = [f"pipeline {self.pipeline} run {self.id}: {self.status} (cause: {self.cause})"]
        for s in self.steps:
            took = f"{s.duration_s:.2f}s" if s.duration_s is not None else "-"
            tries = f", {s.attempts} attempts" if s.attempts > 1 else ""
            lines.append(f"  {s.node:<24} {s.state:<9} {took}{tries}")
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


def _ws(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _resolve(value: Any, outputs: Callable[[str], Any]) -> Any:
    """Replace every StepOutput placeholder in nested arguments with the upstream step's value."""
    if isinstance(value, StepOutput):
        result = outputs(value.node)
        for key in value.path:
            result = result[key]
        return result
    if isinstance(value, tuple | list):
        return type(value)(_resolve(v, outputs) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    return value


def _fingerprint(value: Any, records: dict[str, StepRun]) -> Any:
    """Describe an input for the cache key: upstream outputs by content digest, plain values by hash."""
    if isinstance(value, StepOutput):
        return {"from": records[value.node].output_digest, "path": [repr(p) for p in value.path]}
    if isinstance(value, tuple | list) and any(True for _ in placeholders(value)):
        return [_fingerprint(v, records) for v in value]
    if isinstance(value, dict) and any(True for _ in placeholders(value)):
        return {str(k): _fingerprint(v, records) for k, v in value.items()}
    digest = cache.value_hash(value)
    if digest is None:
        raise TypeError("unpicklable input")
    return digest


def run_pipeline(pipeline: Pipeline | str, params: dict[str, Any] | None = None, cause: str = "manual",
                 workspace: Any = None, use_cache: bool | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> PipelineRun:
    """Run a pipeline in this process and return its record; a failed step fails the run (never raises for it)."""
    ws = _ws(workspace)
    if isinstance(pipeline, str):
        pipeline = get_pipeline(pipeline, ws)
    settings = ws.config.section("pipelines")
    use_cache = settings.cache if use_cache is None else use_cache
    merged = pipeline.resolve_params(params)
    nodes = pipeline.graph(merged)
    store = schema.store(ws)
    run = PipelineRun(uuid.uuid4().hex[:12], pipeline.name, RUNNING, cause, merged, datetime.now(UTC))
    run.steps = [StepRun(n.id, n.step.name, PENDING, list(n.upstream)) for n in nodes]
    with store.transaction() as tx:
        tx.execute("INSERT INTO pipeline_runs (id, pipeline, status, cause, params, started_at) VALUES (?,?,?,?,?,?)",
                   (run.id, run.pipeline, RUNNING, cause, json.dumps(merged, default=repr), _ts(run.started_at)))
        tx.executemany("INSERT INTO pipeline_step_runs (run_id, node, step, position, upstream, state) "
                       "VALUES (?,?,?,?,?,?)",
                       [(run.id, s.node, s.step, i, json.dumps(s.upstream), PENDING) for i, s in enumerate(run.steps)])
    token = RUNNING_PIPELINES.set(RUNNING_PIPELINES.get() | {pipeline.name})
    try:
        _execute(ws, run, nodes, use_cache, sleep)
    except BaseException:
        run.error = run.error or "interrupted"
        _finish(store, run, FAILED)
        raise
    finally:
        RUNNING_PIPELINES.reset(token)
    failed = [s for s in run.steps if s.state == FAILED]
    if failed:
        s = failed[0]
        first_line = (s.error or "").strip().splitlines()[-1:] or [""]
        run.error = f"step {s.node!r} failed after {s.attempts} attempt(s): {first_line[0]}"
    _finish(store, run, FAILED if failed else SUCCEEDED)
    return run


def _finish(store: Any, run: PipelineRun, status: str) -> None:
    run.status = status
    run.ended_at = datetime.now(UTC)
    store.execute("UPDATE pipeline_runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                  (status, _ts(run.ended_at), run.error, run.id))


def _save_step(store: Any, run_id: str, s: StepRun) -> None:
    store.execute(
        "UPDATE pipeline_step_runs SET state = ?, attempts = ?, started_at = ?, ended_at = ?, duration_s = ?,"
        " cache_key = ?, output_digest = ?, output_format = ?, job_id = ?, error = ? WHERE run_id = ? AND node = ?",
        (s.state, s.attempts, _ts(s.started_at), _ts(s.ended_at), s.duration_s, s.cache_key, s.output_digest,
         s.output_format, s.job_id, s.error, run_id, s.node))


def _execute(ws: Any, run: PipelineRun, nodes: list[Node], use_cache: bool, sleep: Callable[[float], None]) -> None:
    store = schema.store(ws)
    records = {s.node: s for s in run.steps}
    loaded: dict[str, Any] = {}

    def output_of(node: str) -> Any:
        if node not in loaded:
            r = records[node]
            loaded[node] = cache.load_output(ws, cache.StoredOutput(r.output_digest or "", r.output_format or "pickle"))
        return loaded[node]

    for node in nodes:
        rec = records[node.id]
        blocked = [u for u in node.upstream if records[u].state not in DONE]
        if blocked:
            rec.state, rec.error = SKIPPED, f"upstream step {blocked[0]!r} did not succeed"
            _save_step(store, run.id, rec)
            continue
        try:
            inputs = {"args": _fingerprint(list(node.args), records), "kwargs": _fingerprint(node.kwargs, records)}
            rec.cache_key = cache.cache_key(node.step.name, cache.code_hash(node.step.fn), inputs)
        except TypeError:
            rec.cache_key = None  # an input that cannot be hashed: always run
        hit = cache.lookup(ws, rec.cache_key) if use_cache and node.step.cache and rec.cache_key else None
        if hit is not None:
            rec.state, rec.output_digest, rec.output_format, rec.duration_s = CACHED, hit.digest, hit.format, 0.0
            _save_step(store, run.id, rec)
            continue
        rec.state, rec.started_at = RUNNING, datetime.now(UTC)
        _save_step(store, run.id, rec)
        started = time.perf_counter()
        for attempt in range(1, node.step.retries + 2):
            rec.attempts = attempt
            try:
                args = _resolve(list(node.args), output_of)
                kwargs = _resolve(node.kwargs, output_of)
                if node.step.gpus:
                    stored, value = _run_as_job(ws, run, node, rec, args, kwargs), None
                else:
                    value = node.step.fn(*args, **kwargs)
                    stored = cache.save_output(ws, value)
                    loaded[node.id] = value
            except Exception:  # a step's own code may raise anything; it is recorded and retried
                rec.error = traceback.format_exc(limit=-8)[-4000:]
                if attempt <= node.step.retries:
                    _save_step(store, run.id, rec)
                    sleep(node.step.backoff_s * 2 ** (attempt - 1))
                    continue
                rec.state = FAILED
                break
            rec.state, rec.error = SUCCEEDED, None
            rec.output_digest, rec.output_format = stored.digest, stored.format
            if rec.cache_key and node.step.cache:
                cache.remember(ws, rec.cache_key, node.step.name, stored, run.id)
            break
        rec.ended_at = datetime.now(UTC)
        rec.duration_s = time.perf_counter() - started
        _save_step(store, run.id, rec)


def _run_as_job(ws: Any, run: PipelineRun, node: Node, rec: StepRun, args: list[Any],
                kwargs: dict[str, Any]) -> cache.StoredOutput:
    """Run a GPU step as a scheduler job (``forgeml.pipelines.worker``) and return its stored output."""
    import inspect
    import pickle
    import sys

    try:
        from forgeml.jobs import SUCCEEDED as JOB_OK
        from forgeml.jobs import JobSpec, submit, wait
    except ImportError as e:
        raise JobError(f"step {node.id!r} asks for GPUs but the jobs layer is not available: {e}") from e
    fn = node.step.fn
    payload = {"module": fn.__module__, "qualname": fn.__qualname__, "file": inspect.getsourcefile(fn),
               "args": args, "kwargs": kwargs}
    digest = ws.artifacts.put_bytes(pickle.dumps(payload, protocol=5))
    result = ws.dot / "pipelines" / "results" / f"{run.id}-{node.id}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(command=[sys.executable, "-m", "forgeml.pipelines.worker", digest, str(result)],
                   name=f"{run.pipeline}.{node.id}", gpus=node.step.gpus, workdir=str(ws.root),
                   params={"pipeline": run.pipeline, "run": run.id, "step": node.id})
    job = submit(spec, ws)
    rec.job_id = job.id
    job = wait(job.id, workspace=ws)
    if job.state != JOB_OK or not result.exists():
        raise JobError(f"step {node.id!r} job {job.id} ended {job.state}; see `forgeml jobs logs {job.id}`")
    data = json.loads(result.read_text())
    return cache.StoredOutput(data["digest"], data["format"])


# ---------------------------------------------------------------- history
def _step_from(row: dict[str, Any]) -> StepRun:
    t = lambda v: None if v is None else datetime.fromtimestamp(v, UTC)  # noqa: E731
    return StepRun(row["node"], row["step"], row["state"], json.loads(row["upstream"]), row["attempts"],
                   t(row["started_at"]), t(row["ended_at"]), row["duration_s"], row["cache_key"],
                   row["output_digest"], row["output_format"], row["job_id"], row["error"])


def get_run(run_id: str, workspace: Any = None) -> PipelineRun:
    """Return a pipeline run by id (or a unique id prefix), with its steps."""
    store = schema.store(_ws(workspace))
    rows = store.query("SELECT * FROM pipeline_runs WHERE id LIKE ? || '%' ORDER BY started_at DESC LIMIT 2",
                       (run_id,))
    if not rows:
        raise NotFoundError(f"no pipeline run {run_id!r}; list them with `forgeml pipeline ls`")
    if len(rows) > 1 and rows[0]["id"] != run_id:
        raise NotFoundError(f"pipeline run prefix {run_id!r} is ambiguous; give more characters")
    r = rows[0]
    run = PipelineRun(r["id"], r["pipeline"], r["status"], r["cause"], json.loads(r["params"]),
                      datetime.fromtimestamp(r["started_at"], UTC),
                      None if r["ended_at"] is None else datetime.fromtimestamp(r["ended_at"], UTC), r["error"])
    steps = store.query("SELECT * FROM pipeline_step_runs WHERE run_id = ? ORDER BY position", (r["id"],))
    run.steps = [_step_from(s) for s in steps]
    return run


def list_runs(pipeline: str | None = None, limit: int = 50, workspace: Any = None) -> list[dict[str, Any]]:
    """Return recent pipeline runs, newest first, as rows (id, pipeline, status, cause, started_at, duration_s)."""
    sql = "SELECT id, pipeline, status, cause, started_at, ended_at, error FROM pipeline_runs"
    params: tuple[Any, ...] = ()
    if pipeline:
        sql += " WHERE pipeline = ?"
        params = (pipeline,)
    rows = schema.store(_ws(workspace)).query(sql + " ORDER BY started_at DESC LIMIT ?", (*params, limit))
    for r in rows:
        r["duration_s"] = None if r["ended_at"] is None else round(r["ended_at"] - r["started_at"], 3)
        r["started_at"] = datetime.fromtimestamp(r["started_at"], UTC).isoformat(timespec="seconds")
        del r["ended_at"]
    return rows
