"""Helpers for training code run as a job: where to write checkpoints and which one to resume from."""

from __future__ import annotations

import os
from pathlib import Path


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
