"""Distributed data parallel: a real two-process PyTorch job on CPU (gloo) launched through torchrun.

No GPU is involved: the job asks for nproc = 2 CPU workers, which takes the same torchrun path a
multi-GPU job takes.
"""

from __future__ import annotations

import json

import pytest
from jobs_support import write_script

from forgeml.jobs import JobSpec, Scheduler, get_job, read_logs, submit

DDP = """
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(rank)  # different starting weights: DDP must broadcast rank 0's
model = torch.nn.Linear(8, 1)
ddp = DistributedDataParallel(model)
opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
data = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
for _ in range(5):
    x = torch.randn(16, 8, generator=data)
    loss = ((ddp(x) - x.sum(1, keepdim=True)) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
out = Path(os.environ["FORGEML_CHECKPOINT_DIR"])
weights = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
(out / f"rank{rank}.json").write_text(json.dumps(weights))
print(f"rank {rank} of {world} RANK={os.environ['RANK']} run={os.environ.get('FORGEML_RUN_ID')}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow  # three interpreters import torch (launcher + two workers): seconds each on 2 cores
def test_two_process_ddp_on_cpu_keeps_weights_identical(jobs_ws) -> None:
    """Both ranks finish, and their trained weights are identical (rank 1 started from other weights)."""
    write_script(jobs_ws, "ddp.py", DDP)
    job = submit(JobSpec(script="ddp.py", framework="pytorch", nproc=2, env={"OMP_NUM_THREADS": "1"}), jobs_ws)
    assert "torch.distributed.run" in job.spec.argv()
    Scheduler(jobs_ws).run_until_idle(timeout=120)
    done = get_job(job.id, jobs_ws)
    assert done.state == "SUCCEEDED", read_logs(job.id, workspace=jobs_ws)[0][-2000:]
    folder = jobs_ws.dot / "jobs" / job.id / "checkpoints"
    w0, w1 = (json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1))
    assert w0.keys() == {"weight", "bias"} and w0 == w1, "weights differ across ranks"
    log = read_logs(job.id, workspace=jobs_ws)[0]
    assert "rank 0 of 2 RANK=0" in log and "rank 1 of 2 RANK=1" in log
