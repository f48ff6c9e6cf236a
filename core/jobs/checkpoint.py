"""Helpers for training code run as a job: checkpoints that survive preemption, and where to resume from.

``forgeml.checkpoint(state, step)`` saves the state atomically in the job's checkpoint folder (which
every attempt of the job on this machine sees, on whichever GPUs it is placed) and copies it into the
workspace's artifact store under the job's run (so an attempt on another host finds it too);
``forgeml.resume()`` returns the newest one, or None on a fresh start; ``forgeml.should_stop()`` turns True once the scheduler sends
SIGTERM (preemption, cancel, timeout), so the loop can save and exit within the grace period:

    state = forgeml.resume() or {"step": 0, "model": model.state_dict(), ...}
    for step in range(state["step"], steps):
        train_one_step()
        if step % 100 == 0 or forgeml.should_stop():
            forgeml.checkpoint({"step": step + 1, "model": model.state_dict(), ...}, step=step + 1)
            if forgeml.should_stop():
                sys.exit(0)
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from forgeml.errors import StorageError, ValidationError
from forgeml.jobs.ckptstore import fetch_newer, publish, step_of

CHECKPOINT_PREFIX = "ckpt-"
_stop = threading.Event()
_installed = False


def checkpoint_dir() -> Path | None:
    """Return the job's checkpoint folder (FORGEML_CHECKPOINT_DIR), or None outside a forgeml job."""
    value = os.environ.get("FORGEML_CHECKPOINT_DIR")
    return Path(value) if value else None


def latest_checkpoint(pattern: str = "*") -> Path | None:
    """Return the newest file in the job's checkpoint folder matching pattern, or None to start fresh."""
    folder = checkpoint_dir()
    if folder is None or not folder.is_dir():
        return None
    found = [p for p in folder.glob(pattern) if p.is_file() and not p.name.endswith(".tmp")]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name)) if found else None


def job_params() -> dict:
    """Return the job's hyperparameters (FORGEML_PARAMS), or {} outside a forgeml job."""
    import json

    return json.loads(os.environ.get("FORGEML_PARAMS") or "{}")


def _on_term(signum: int, frame: Any) -> None:
    _stop.set()


def install_stop_handler() -> None:
    """Catch SIGTERM so should_stop() turns True instead of the process dying mid-step (main thread only)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_term)
    _installed = True


def should_stop() -> bool:
    """True once the scheduler has asked this job to stop (SIGTERM): save a checkpoint and exit."""
    install_stop_handler()
    return _stop.is_set()


def _folder(what: str) -> Path:
    folder = checkpoint_dir()
    if folder is None:
        raise ValidationError(f"forgeml.{what}() works inside a forgeml job; set FORGEML_CHECKPOINT_DIR to a folder "
                              "to use it elsewhere")
    return folder


def _ordered(folder: Path) -> list[Path]:
    """The complete checkpoints in the folder, oldest first (by step, then by time)."""
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*.pt") if p.is_file()]
    return sorted(found, key=lambda p: (p.stem[len(CHECKPOINT_PREFIX):].zfill(20), p.stat().st_mtime_ns))


def checkpoint(state: Any, step: int | None = None, keep: int = 2) -> Path:
    """Save state (anything torch.save takes) as the job's newest checkpoint, atomically; keep the last `keep`."""
    import torch

    install_stop_handler()
    folder = _folder("checkpoint")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise ValidationError(f"checkpoint step must be a non-negative whole number, got {step!r}")
    if step is None:
        done = _ordered(folder) if folder.is_dir() else []
        step = int(done[-1].stem[len(CHECKPOINT_PREFIX):]) + 1 if done else 0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{CHECKPOINT_PREFIX}{step:012d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a reader sees the old checkpoint or the new one, never half of one
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not save checkpoint {path.name} in {folder} ({e.strerror}); the previous one "
                           "is intact") from e
    for old in _ordered(folder)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    publish(path, CHECKPOINT_PREFIX, keep)
    return path


def resume(map_location: Any = "cpu") -> Any:
    """Return the job's newest checkpoint (what checkpoint() saved), or None when there is none yet."""
    import torch

    install_stop_handler()
    folder = checkpoint_dir()
    if folder is None:
        return None
    # an attempt on another host starts with an empty folder: the run's stored checkpoints fill it
    local = _ordered(folder) if folder.is_dir() else []
    fetch_newer(folder, CHECKPOINT_PREFIX, step_of(local[-1].name, CHECKPOINT_PREFIX) if local else None)
    if not folder.is_dir():
        return None
    for path in reversed(_ordered(folder)):
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except (OSError, EOFError, RuntimeError, ValueError) as e:
            # a checkpoint cut short by a full disk or a crash: fall back to the one before
            import logging

            logging.getLogger("forgeml.jobs").warning("checkpoint %s is unreadable (%s); trying an older one",
                                                      path.name, e)
    return None
