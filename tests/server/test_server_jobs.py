"""Jobs through `forgeml server`: submit, status, logs, cancel, and the event stream of every transition."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from server_support import ApiServer, role_tokens

FAST = """
[scheduler]
poll_interval_s = 0.05
grace_period_s = 1.0
backoff_base_s = 0.2
backoff_factor = 1.0
retryable_exit_codes = [3]

[scheduler.inventory]
plugin = "declared"
count = 2
"""

FAIL_ONCE = """
import pathlib, sys, time
marker = pathlib.Path("attempted")
print("attempt", "two" if marker.exists() else "one", flush=True)
time.sleep(0.3)
if not marker.exists():
    marker.write_text("x")
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def jobs_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ApiServer, dict[str, str]]]:
    """A fast-scheduling workspace (two declared GPUs, no hardware) served by `forgeml server`."""
    from forgeml.jobs import Scheduler
    from forgeml.workspace import Workspace, set_current

    root = tmp_path_factory.mktemp("jobs") / "ws"
    Workspace.init(root).close()
    (root / "plugins.toml").write_text(FAST)
    (root / "fail_once.py").write_text(FAIL_ONCE)
    (root / "sleepy.py").write_text("import time\ntime.sleep(60)\n")
    ws = Workspace(root)
    set_current(ws)
    tokens = role_tokens(ws)
    server = ApiServer(root).wait_ready()
    scheduler = Scheduler(ws).start_in_thread()
    try:
        yield ws, server, tokens
    finally:
        scheduler.stop()
        server.stop()
        set_current(None)
        ws.close()


def _events(server: ApiServer, token: str, job_id: str, **headers: str) -> list[dict[str, Any]]:
    out = []
    with server.client(token) as c, c.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event.update(json.loads(line[6:]))
            elif line == "" and event:
                out.append(event)
                event = {}
    return out


def test_event_stream_delivers_every_transition_in_order(jobs_platform: Any) -> None:
    ws, server, tokens = jobs_platform
    with server.client(tokens["viewer"]) as c:
        denied = c.post("/jobs", json={"script": "fail_once.py"})
        assert denied.status_code == 403 and "jobs.submit" in denied.json()["error"]
    with server.client(tokens["scientist"]) as c:
        r = c.post("/jobs", json={"script": "fail_once.py", "retries": 1, "name": "flaky"})
        assert r.status_code == 201, r.text
        job = r.json()
    streamed = _events(server, tokens["viewer"], job["id"])  # subscribed while it runs; ends when it is final
    from forgeml.jobs import job_events

    stored = job_events(job["id"], ws)
    assert [(e["old_state"], e["new_state"]) for e in streamed] == [(e["old_state"], e["new_state"]) for e in stored]
    states = [e["new_state"] for e in streamed]
    assert states[0] == "PENDING" and states[-1] == "SUCCEEDED" and states.count("RUNNING") == 2, stored
    assert [e["id"] for e in streamed] == sorted(e["id"] for e in streamed)
    # a subscriber that reconnects gets only what it missed
    resumed = _events(server, tokens["viewer"], job["id"], **{"Last-Event-ID": str(streamed[1]["id"])})
    assert resumed == streamed[2:]
    with server.client(tokens["viewer"]) as c:
        shown = c.get(f"/jobs/{job['id']}").json()
        assert shown["state"] == "SUCCEEDED" and shown["attempts"] == 2
        assert "attempt two" in c.get(f"/jobs/{job['id']}/logs").json()["text"]
        assert c.get(f"/jobs/{job['id']}/logs", params={"attempt": 1}).json()["text"].startswith("attempt one")
        assert any(j["id"] == job["id"] for j in c.get("/jobs", params={"state": "SUCCEEDED"}).json()["jobs"])


def test_cancel_by_role(jobs_platform: Any) -> None:
    ws, server, tokens = jobs_platform
    with server.client(tokens["scientist"]) as c:
        job = c.post("/jobs", json={"script": "sleepy.py"}).json()
    with server.client(tokens["viewer"]) as c:
        assert c.post(f"/jobs/{job['id']}/cancel", json={}).status_code == 403
    with server.client(tokens["scientist"]) as c:
        assert c.post(f"/jobs/{job['id']}/cancel", json={}).status_code == 200
    states = [e["new_state"] for e in _events(server, tokens["viewer"], job["id"])]
    assert states[-1] == "CANCELLED"
    with server.client(tokens["scientist"]) as c:
        again = c.post(f"/jobs/{job['id']}/cancel", json={})
        assert again.status_code == 200 and again.json()["state"] == "CANCELLED"
        assert c.get("/jobs/nonexistent").status_code == 404
        bad = c.post("/jobs", json={"script": "fail_once.py", "gpus": -1})
        assert bad.status_code == 422
        assert c.post("/jobs", json={"scriptt": "x.py"}).status_code == 422
