"""`forgeml.distributed`: DDP and FSDP for jobs launched with ``strategy = "ddp" | "fsdp"`` (torchrun).

The scheduler starts torchrun with the right environment; in the training script:

    from forgeml import distributed as fd

    fd.init()                                   # process group: NCCL on GPUs, gloo on CPU
    model = fd.wrap(model)                      # FSDP2 (fully_shard) or DDP, as the job's strategy says
    state = fd.load(model, optimizer)           # the newest sharded checkpoint, or None on a fresh start
    ...
    fd.save(model, optimizer, step=step)        # torch.distributed.checkpoint, one shard per process
    fd.finish()

Checkpoints go to the job's checkpoint folder (shared by every attempt, so a preempted job resumes
on whichever GPUs it is placed next); each is written to a temporary folder and renamed once every
process has finished its shard, so a job stopped mid-save resumes from the previous one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError
from forgeml.jobs.checkpoint import checkpoint_dir, install_stop_handler

DCP_PREFIX = "dcp-"


def strategy() -> str:
    """The job's distributed strategy (FORGEML_STRATEGY: ddp, fsdp, none or auto)."""
    return os.environ.get("FORGEML_STRATEGY", "auto")


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes the job has (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init() -> tuple[int, int]:
    """Start the process group once (NCCL with CUDA, gloo otherwise); return (rank, world size)."""
    import torch
    import torch.distributed as dist

    install_stop_handler()
    if world_size() > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return rank(), world_size()


def _device() -> Any:
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap(model: Any, how: str | None = None) -> Any:
    """Shard the model with FSDP2 (each child module, then the root) or wrap it in DDP, per the strategy."""
    import torch.distributed as dist

    how = how or strategy()
    if how not in ("ddp", "fsdp", "none", "auto"):
        raise ValidationError(f"strategy must be ddp, fsdp, none or auto, got {how!r}")
    if not dist.is_initialized() or how in ("none", "auto") and world_size() == 1:
        return model
    device = _device()
    model = model.to(device)
    if how == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world_size(),))
        for child in model.children():
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _folder() -> Path:
    folder = checkpoint_dir()
    if folder is None:
        raise ValidationError("forgeml.distributed checkpoints work inside a forgeml job; set FORGEML_CHECKPOINT_DIR "
                              "to use them elsewhere")
    return folder


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def save(model: Any, optimizer: Any = None, step: int = 0, extra: dict | None = None, keep: int = 2) -> Path:
    """Save a sharded checkpoint of model (and optimizer) with torch.distributed.checkpoint; every rank calls it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    folder = _folder()
    final = folder / f"{DCP_PREFIX}{step:012d}"
    tmp = folder / f".{DCP_PREFIX}{step:012d}.tmp"
    if rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    model_state, optim_state = get_state_dict(model, optimizer or [])
    state = {"model": model_state, "extra": {"step": step, **(extra or {})}}
    if optimizer is not None:
        state["optim"] = optim_state
    dcp.save(state, checkpoint_id=str(tmp))
    _barrier()
    if rank() == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # complete checkpoints only: a job stopped mid-save resumes from the one before
        for old in sorted(folder.glob(f"{DCP_PREFIX}*"))[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def latest() -> Path | None:
    """The newest complete sharded checkpoint of the job, or None."""
    folder = checkpoint_dir()
    if folder is None or not folder.is_dir():
        return None
    found = sorted(p for p in folder.glob(f"{DCP_PREFIX}*") if p.is_dir())
    return found[-1] if found else None


def load(model: Any, optimizer: Any = None) -> dict | None:
    """Load the newest sharded checkpoint into model (and optimizer) in place; return its extra values or None."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = latest()
    if path is None:
        return None
    model_state, optim_state = get_state_dict(model, optimizer or [])
    state: dict[str, Any] = {"model": model_state, "extra": {"step": 0}}
    if optimizer is not None:
        state["optim"] = optim_state
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer or [], model_state_dict=state["model"],
                   optim_state_dict=state.get("optim", {}))
    return state["extra"]


def full_state(model: Any) -> dict:
    """The whole (unsharded) model state on rank 0's CPU, for export or registration; {} on other ranks."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return full if rank() == 0 else {}


def finish() -> None:
    """Tear the process group down (call at the end of the script)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
