"""Preemption that loses seconds: forgeml.checkpoint/resume/should_stop, sharded FSDP checkpoints, and equality.

A training job preempted several times (SIGTERM, save, requeue, placed again) must end with exactly
the weights of an uninterrupted run. GPUs are the ``declared`` inventory; jobs are real processes and
the FSDP job is a real 2-process torchrun job on CPU with gloo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_support import write_script

from forgeml.errors import ValidationError
from forgeml.jobs import JobSpec, Scheduler, get_job, job_attempts, read_logs, submit, wait

torch = pytest.importorskip("torch")

TRAIN = """
import sys, time
from pathlib import Path
import torch
import forgeml

STEPS = 240
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
data = torch.Generator().manual_seed(1)
start = 0
state = forgeml.resume()
if state is not None:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    data.set_state(state["data"])
    start = state["step"]
print(f"resumed at step {start}", flush=True)
for step in range(start, STEPS):
    x = torch.randn(32, 16, generator=data)
    loss = ((model(x) - x.sum(1, keepdim=True).sin()) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    time.sleep(float(sys.argv[2]))
    stop = forgeml.should_stop()
    if stop or (step + 1) % 50 == 0:
        forgeml.checkpoint({"step": step + 1, "model": model.state_dict(), "optim": opt.state_dict(),
                            "data": data.get_state()}, step=step + 1)
    if stop:
        print(f"stopping after step {step + 1}", flush=True)
        sys.exit(0)
torch.save(model.state_dict(), sys.argv[1])
print("done", flush=True)
"""


def _log(job_id: str, attempt: int, ws) -> str:
    """The attempt's log so far, or "" before the attempt exists."""
    from forgeml.errors import NotFoundError

    try:
        return read_logs(job_id, attempt=attempt, workspace=ws)[0]
    except NotFoundError:
        return ""


def test_checkpoint_keeps_the_newest_and_resume_skips_a_truncated_one(tmp_path: Path, monkeypatch) -> None:
    """Checkpoints are numbered by step, old ones pruned; a cut-short newest one falls back to the one before."""
    from forgeml.jobs import checkpoint, resume

    monkeypatch.setenv("FORGEML_CHECKPOINT_DIR", str(tmp_path / "ck"))
    assert resume() is None
    for step in (1, 2, 3):
        checkpoint({"step": step}, step=step)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["ckpt-000000000002.pt", "ckpt-000000000003.pt"]
    assert resume() == {"step": 3}
    (tmp_path / "ck" / "ckpt-000000000003.pt").write_bytes(b"PK\x03\x04 cut short")
    assert resume() == {"step": 2}
    assert checkpoint({"step": 4}).name == "ckpt-000000000004.pt"  # no step given: the next number


def test_checkpoint_outside_a_job_and_a_bad_step_are_clear_errors(monkeypatch, tmp_path: Path) -> None:
    """Outside a job there is no folder to save to; a negative or non-integer step is refused."""
    from forgeml.jobs import checkpoint

    monkeypatch.delenv("FORGEML_CHECKPOINT_DIR", raising=False)
    with pytest.raises(ValidationError, match="inside a forgeml job"):
        checkpoint({"x": 1})
    monkeypatch.setenv("FORGEML_CHECKPOINT_DIR", str(tmp_path))
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValidationError, match="step"):
            checkpoint({"x": 1}, step=bad)


def test_a_job_preempted_three_times_ends_with_the_uninterrupted_weights(jobs_ws, tmp_path: Path) -> None:
    """Three urgent jobs each take the only GPU; the training job saves on SIGTERM, resumes, and matches a clean run."""
    write_script(jobs_ws, "train.py", TRAIN)
    write_script(jobs_ws, "urgent.py", "print('urgent')\n")
    reference = tmp_path / "reference.pt"
    env = {**os.environ, "FORGEML_CHECKPOINT_DIR": str(tmp_path / "ref-ck"), "FORGEML_STRATEGY": "none"}
    subprocess.run([sys.executable, str(Path(jobs_ws.root) / "train.py"), str(reference), "0"], env=env, check=True,
                   capture_output=True, timeout=300)
    from jobs_support import FAST_CONFIG

    from forgeml.workspace import Workspace, set_current

    (Path(jobs_ws.root) / "plugins.toml").write_text(FAST_CONFIG.replace("count = 4", "count = 1"))
    ws = Workspace(Path(jobs_ws.root))
    set_current(ws)
    final = tmp_path / "final.pt"
    job = submit(JobSpec(script="train.py", args=[str(final), "0.03"], gpus=1), ws)
    scheduler = Scheduler(ws).start_in_thread()
    try:
        for n in range(3):
            deadline = time.monotonic() + 60
            while "resumed at step" not in _log(job.id, n + 1, ws):
                assert time.monotonic() < deadline, f"attempt {n + 1} never started"
                time.sleep(0.05)
            time.sleep(0.5)  # let it train a little
            urgent = submit(JobSpec(script="urgent.py", gpus=1, priority=10), ws)
            assert wait(urgent.id, timeout=60, workspace=ws).state == "SUCCEEDED"
        done = wait(job.id, timeout=120, workspace=ws)
    finally:
        scheduler.stop()
        ws.close()
    assert done.state == "SUCCEEDED" and done.preemptions == 3 and done.failures == 0, done
    logs = [read_logs(job.id, attempt=a, workspace=ws)[0] for a in range(1, 5)]
    assert all("stopping after step" in log for log in logs[:3]) and "done" in logs[3]
    resumed = [int(log.split("resumed at step ")[1].split()[0]) for log in logs]
    assert resumed[0] == 0 and resumed == sorted(resumed) and resumed[-1] > 0
    assert len(job_attempts(job.id, ws)) == 4
    want, got = torch.load(reference), torch.load(final)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert get_job(job.id, ws).state == "SUCCEEDED"


FSDP = """
import json, os, sys
from pathlib import Path
import torch
from forgeml import distributed as fd

rank, world = fd.init()
torch.manual_seed(0)
def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
model = fd.wrap(make())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.Generator().manual_seed(5)  # every rank sees the same batches: the result equals one process
for step in range(4):
    x = torch.randn(32, 8, generator=data)
    loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
fd.save(model, opt, step=4)
trained = fd.full_state(model)
again = fd.wrap(make())
opt2 = torch.optim.SGD(again.parameters(), lr=0.1)
extra = fd.load(again, opt2)
reloaded = fd.full_state(again)
if rank == 0:
    same = all(torch.equal(trained[k], reloaded[k]) for k in trained)
    torch.save(trained, sys.argv[1])
    print(json.dumps({"world": world, "strategy": fd.strategy(), "step": extra["step"], "reload_equal": same,
                      "shards": len(list(fd.latest().glob("*.distcp")))}), flush=True)
fd.finish()
"""


def test_an_fsdp_job_on_two_cpu_processes_trains_like_one_and_reloads_its_sharded_checkpoint(jobs_ws,
                                                                                                tmp_path: Path) -> None:
    """strategy = "fsdp" with 2 processes: torchrun launches, FSDP2 shards, DCP saves one shard per rank."""
    import json

    write_script(jobs_ws, "fsdp.py", FSDP)
    out = tmp_path / "fsdp.pt"
    job = submit(JobSpec(script="fsdp.py", args=[str(out)], strategy="fsdp", nproc=2, cpus=2), jobs_ws)
    assert job.spec.argv()[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    Scheduler(jobs_ws).run_until_idle(timeout=300)
    done = get_job(job.id, jobs_ws)
    log = read_logs(job.id, workspace=jobs_ws)[0]
    assert done.state == "SUCCEEDED", log
    report = json.loads(next(line for line in log.splitlines() if line.startswith("{")))
    assert report == {"world": 2, "strategy": "fsdp", "step": 4, "reload_equal": True, "shards": 2}
    # the same 4 steps in one plain process give the same weights
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(5)
    for _ in range(4):
        x = torch.randn(32, 8, generator=data)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sharded = torch.load(out)
    assert all(torch.allclose(model.state_dict()[k], sharded[k], atol=1e-6) for k in sharded)


def test_strategy_is_checked_and_picks_the_launcher() -> None:
    """An unknown strategy is refused with a suggestion; ddp/fsdp launch torchrun, none never does."""
    with pytest.raises(ValidationError, match="strategy must be one of"):
        JobSpec.from_dict({"script": "t.py", "strategy": "fdsp"})
    with pytest.raises(ValidationError, match="nodes must be 1 or more"):
        JobSpec.from_dict({"script": "t.py", "nodes": 0})
    assert "torch.distributed.run" in JobSpec(script="t.py", strategy="ddp").argv("python")
    assert "--nproc-per-node=4" in JobSpec(script="t.py", strategy="fsdp", gpus=4).argv("python")
    assert "torch.distributed.run" not in JobSpec(script="t.py", framework="pytorch", gpus=4,
                                                  strategy="none").argv("python")
