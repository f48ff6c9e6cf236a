"""Job routes: submit, list, status, cancel, logs, and a server-sent-events stream of state changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from forgeml.auth.service import require
from forgeml.server.api import Call, Operation, Param
from forgeml.server.schemas import obj

TAG = "jobs"
_JOB = Param("job_id", "path", {"type": "string", "minLength": 4, "maxLength": 64}, True, "Job id or unique prefix.")
POLL_S = 0.1


def submit_job(call: Call) -> dict[str, Any]:
    """Queue a job from a spec given as JSON (the keys of a job spec file)."""
    from forgeml.jobs import JobSpec, submit

    spec = JobSpec.from_dict(call.body, "job spec in the request body")
    return submit(spec, call.workspace).to_dict()


def list_all(call: Call) -> dict[str, Any]:
    """List jobs, newest first."""
    from forgeml.jobs import list_jobs

    require("jobs.read", workspace=call.workspace, subject="jobs")
    jobs = list_jobs(call.query.get("state"), call.query.get("target"), call.query.get("limit"), call.workspace)
    return {"jobs": [j.to_dict() for j in jobs]}


def show(call: Call) -> dict[str, Any]:
    """Return one job and where it stands."""
    from forgeml.jobs import get_job

    require("jobs.read", workspace=call.workspace, subject=f"jobs/{call.path['job_id']}")
    return get_job(call.path["job_id"], call.workspace).to_dict()


def cancel_job(call: Call) -> dict[str, Any]:
    """Cancel a job (a running one is stopped by its scheduler)."""
    from forgeml.jobs import cancel

    return cancel(call.path["job_id"], call.workspace).to_dict()


def logs(call: Call) -> dict[str, Any]:
    """Return an attempt's log text from a byte offset, and the offset to continue from."""
    from forgeml.jobs import read_logs

    require("jobs.read", workspace=call.workspace, subject=f"jobs/{call.path['job_id']}/logs")
    text, offset = read_logs(call.path["job_id"], call.query.get("attempt"), call.query.get("offset", 0),
                             call.workspace)
    return {"text": text, "offset": offset}


def events(call: Call) -> StreamingResponse:
    """Stream every state transition of a job as server-sent events, in order, until it is final.

    Each event carries its id; a client that reconnects with Last-Event-ID gets what it missed.
    """
    from forgeml.jobs import get_job
    from forgeml.jobs.queue import TERMINAL, job_events_since

    ws = call.workspace
    require("jobs.read", workspace=ws, subject=f"jobs/{call.path['job_id']}/events")
    job_id = get_job(call.path["job_id"], ws).id
    last = call.request.headers.get("last-event-id", "")
    after = int(last) if last.isdigit() else call.query.get("after", 0)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        while True:
            rows = await run_in_threadpool(job_events_since, job_id, after, ws)
            for row in rows:
                after = row["id"]
                data = orjson.dumps({"job_id": job_id, "at": row["at"], "old_state": row["old_state"],
                                     "new_state": row["new_state"], "reason": row["reason"]})
                yield b"id: %d\nevent: state\ndata: %s\n\n" % (row["id"], data)
            if not rows:
                if (await run_in_threadpool(get_job, job_id, ws)).state in TERMINAL:
                    if not await run_in_threadpool(job_events_since, job_id, after, ws):
                        return
                    continue
                yield b": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


OPERATIONS = [
    Operation("POST", "/jobs", submit_job, "Submit a job", TAG, body=obj(
        {"command": {"type": "array", "items": {"type": "string"}}, "script": {"type": "string"},
         "args": {"type": "array", "items": {"type": "string"}}, "name": {"type": "string"},
         "gpus": {"type": "integer", "minimum": 0}, "target": {"type": "string"}, "params": {"type": "object"},
         "priority": {"type": "integer"}, "retries": {"type": "integer", "minimum": 0}}), status=201),
    Operation("GET", "/jobs", list_all, "List jobs", TAG, [
        Param("state", "query", {"type": "string", "enum": ["PENDING", "RUNNING", "SUCCEEDED", "FAILED",
                                                            "CANCELLED"]}),
        Param("target", "query", {"type": "string"}),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000})]),
    Operation("GET", "/jobs/{job_id}", show, "Show a job", TAG, [_JOB]),
    Operation("POST", "/jobs/{job_id}/cancel", cancel_job, "Cancel a job", TAG, [_JOB], obj({})),
    Operation("GET", "/jobs/{job_id}/logs", logs, "Read a job's log", TAG, [
        _JOB, Param("offset", "query", {"type": "integer", "minimum": 0}),
        Param("attempt", "query", {"type": "integer", "minimum": 1})]),
    Operation("GET", "/jobs/{job_id}/events", events, "Stream state changes (text/event-stream)", TAG, [
        _JOB, Param("after", "query", {"type": "integer", "minimum": 0}, doc="Event id to resume after.")]),
]
