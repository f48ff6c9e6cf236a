"""Checkpoints in the workspace's artifact store, registered with the job's run.

The job's checkpoint folder lives on the machine that runs an attempt. An attempt placed on another
host (an SSH or Slurm target, another node) starts with an empty folder, so every checkpoint is also
stored in the workspace's artifact store (local, S3, whatever plugin the workspace names) and recorded
as ``checkpoints/<name>`` among the run's artifacts; ``resume()`` fetches the newest one from there
when it is newer than anything in the local folder. The store keeps as many as the folder does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError

log = logging.getLogger("forgeml.jobs")

STORE_PREFIX = "checkpoints/"


def _run_and_store(writing: bool) -> tuple[str, Any] | None:
    """The job's run id and tracking store, or None outside a job with a run (nothing to register with)."""
    run_id = os.environ.get("FORGEML_RUN_ID")
    if not run_id or os.environ.get("FORGEML_CHECKPOINT_STORE", "1") == "0":
        return None
    if writing and os.environ.get("RANK", "0") not in ("", "0"):
        return None  # one copy per job: rank 0 publishes, every rank may read
    from forgeml.tracking.store import tracking_store
    from forgeml.workspace import current

    return run_id, tracking_store(current())


def step_of(name: str, prefix: str) -> int | None:
    """The step in a checkpoint file name (ckpt-000000000012.pt -> 12), or None for another name."""
    stem = name[:-3] if name.endswith(".pt") else ""
    digits = stem[len(prefix):] if stem.startswith(prefix) else ""
    return int(digits) if digits.isdigit() else None


def _stored(store: Any, run_id: str, prefix: str) -> list[tuple[int, Any]]:
    """The run's stored checkpoints as (step, record), oldest first."""
    found = []
    for record in store.artifacts(run_id):
        name = record.path[len(STORE_PREFIX):] if record.path.startswith(STORE_PREFIX) else ""
        step = step_of(name, prefix) if "/" not in name else None
        if step is not None:
            found.append((step, record))
    return sorted(found, key=lambda item: (item[0], item[1].created_at))


def publish(path: Path, prefix: str, keep: int) -> bool:
    """Copy a saved checkpoint into the artifact store under the job's run and drop the run's older ones.

    A store that cannot take it (unreachable, full) costs a warning, not the training: the checkpoint
    is safe in the local folder, and an attempt on this host resumes from there.
    """
    try:
        found = _run_and_store(writing=True)
        if found is None:
            return False
        run_id, store = found
        digest = store.workspace.artifacts.put_file(path)
        store.add_artifact(run_id, STORE_PREFIX + path.name, digest, path.stat().st_size)
        for _, old in _stored(store, run_id, prefix)[:-max(1, keep)]:
            store.remove_artifact(run_id, old.path)  # the object itself goes with the next `forgeml gc`
        return True
    except (ForgeError, OSError) as e:
        log.warning("checkpoint %s is saved locally but not in the artifact store: %s", path.name, e)
        return False


def fetch_newer(folder: Path, prefix: str, local_step: int | None) -> Path | None:
    """Download the run's newest stored checkpoint into folder when it is newer than local_step; return it."""
    try:
        found = _run_and_store(writing=False)
        if found is None:
            return None
        run_id, store = found
        stored = _stored(store, run_id, prefix)
        if not stored or (local_step is not None and stored[-1][0] <= local_step):
            return None
        record = stored[-1][1]
        dest = folder / record.path[len(STORE_PREFIX):]
        part = dest.with_name(dest.name + f".{os.getpid()}.part")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            store.workspace.artifacts.get_file(record.digest, part)  # verified against its digest
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        log.info("fetched checkpoint %s of run %s from the artifact store", dest.name, run_id)
        return dest
    except (ForgeError, OSError) as e:
        log.warning("could not fetch the newest checkpoint from the artifact store (%s); resuming from %s", e,
                    "the local folder" if local_step is not None else "scratch")
        return None
