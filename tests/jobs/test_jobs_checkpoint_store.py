"""Checkpoints travel through the workspace's artifact store, so an attempt on another host resumes.

Each "host" is a separate Python process with its own, empty checkpoint folder; the only thing the
two share is the workspace's stores. The S3 case runs against moto's server mode on loopback
(tests/services/s3.sh), an in-memory mock of S3: no real S3 runs here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

HOST = """
import sys, torch, forgeml
state = forgeml.resume()
start = 0 if state is None else state["step"]
print("resumed", start, flush=True)
for step in range(start + 1, start + int(sys.argv[1]) + 1):
    forgeml.checkpoint({"step": step, "w": torch.full((4,), float(step))}, step=step)
print("saved", step, flush=True)
"""


def _host(ws, run_id: str, folder: Path, steps: int) -> str:
    """Run one attempt as its own process with its own checkpoint folder; return its output."""
    env = {**os.environ, "FORGEML_HOME": str(ws.root), "FORGEML_RUN_ID": run_id,
           "FORGEML_CHECKPOINT_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", HOST, str(steps)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _stored(ws, run_id: str) -> list[str]:
    import forgeml.tracking

    return [a.path for a in forgeml.tracking.list_artifacts(run_id, workspace=ws) if a.path.startswith("checkpoints/")]


def _resume_on_another_host(ws, tmp_path: Path) -> str:
    """Two attempts on two hosts: the second resumes where the first stopped, from the store alone."""
    import forgeml.tracking

    run_id = forgeml.tracking.create_run(experiment="ckpt", workspace=ws).id
    host_a, host_b = tmp_path / "host-a" / "checkpoints", tmp_path / "host-b" / "checkpoints"
    assert "resumed 0" in _host(ws, run_id, host_a, 3)
    assert _stored(ws, run_id) == ["checkpoints/ckpt-000000000002.pt", "checkpoints/ckpt-000000000003.pt"]
    shutil.rmtree(host_a)  # host A is gone; nothing of its folder survives
    out = _host(ws, run_id, host_b, 2)
    assert "resumed 3" in out and "saved 5" in out
    assert _stored(ws, run_id) == ["checkpoints/ckpt-000000000004.pt", "checkpoints/ckpt-000000000005.pt"]
    return run_id


def test_an_attempt_on_another_host_resumes_from_the_local_artifact_store(workspace, tmp_path: Path) -> None:
    """The checkpoint is registered with the job's run and fetched (verified) by an attempt with an empty folder."""
    run_id = _resume_on_another_host(workspace, tmp_path)
    import forgeml.tracking

    [back] = forgeml.tracking.download_artifacts(run_id, tmp_path / "back", path="checkpoints/ckpt-000000000005.pt",
                                                 workspace=workspace)
    assert torch.equal(torch.load(back, weights_only=False)["w"], torch.full((4,), 5.0))


def test_an_attempt_on_another_host_resumes_from_s3(configure, s3_endpoint, monkeypatch, tmp_path: Path) -> None:
    """With the workspace's artifacts in a bucket, the checkpoints are objects in the bucket."""
    from forgeml.workspace import default_config_text

    bucket = s3_endpoint.new_bucket()
    text = re.sub(r"\[storage\.artifacts\]\n.*?\n\n", f'[storage.artifacts]\nplugin = "s3"\nroot = "s3://{bucket}/a"\n'
                  'endpoint_url = { env = "FORGEML_TEST_S3_ENDPOINT" }\n\n', default_config_text(), flags=re.S)
    monkeypatch.setenv("FORGEML_TEST_S3_ENDPOINT", s3_endpoint.endpoint_url)
    ws = configure(text)
    import forgeml.tracking

    run_id = _resume_on_another_host(ws, tmp_path)
    digests = {a.digest for a in forgeml.tracking.list_artifacts(run_id, workspace=ws)}
    keys = s3_endpoint.filesystem().find(f"{bucket}/a/objects")
    assert digests and all(any(k.endswith(d) for k in keys) for d in digests)


def test_a_newer_local_checkpoint_wins_and_an_unreachable_store_only_warns(workspace, tmp_path: Path, monkeypatch,
                                                                           caplog) -> None:
    """resume() prefers the local folder when it is ahead; a failing store leaves the local save intact."""
    import forgeml.tracking
    from forgeml.jobs import checkpoint, resume

    run_id = forgeml.tracking.create_run(experiment="ckpt", workspace=workspace).id
    monkeypatch.setenv("FORGEML_RUN_ID", run_id)
    monkeypatch.setenv("FORGEML_CHECKPOINT_DIR", str(tmp_path / "ck"))
    checkpoint({"step": 1}, step=1)
    monkeypatch.setattr(workspace.artifacts, "put_file",
                        lambda path: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    checkpoint({"step": 2}, step=2)
    assert "not in the artifact store" in caplog.text and "No space left" in caplog.text
    assert _stored(workspace, run_id) == ["checkpoints/ckpt-000000000001.pt"]
    assert resume() == {"step": 2}  # the local folder is ahead of the store
    monkeypatch.setenv("FORGEML_CHECKPOINT_STORE", "0")
    monkeypatch.setenv("FORGEML_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert resume() is None  # with the store turned off, another folder starts fresh
