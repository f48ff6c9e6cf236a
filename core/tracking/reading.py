"""What local and remote readers of runs share: the metric-history frame and placing downloaded artifacts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError
from forgeml.paths import safe_join, safe_relpath
from forgeml.tracking.records import ArtifactRecord


def history_frame(steps: Sequence[Any], timestamps: Sequence[Any], values: Sequence[Any]) -> Any:
    """Return metric points as the DataFrame get_metric_history answers (step, UTC timestamp, value)."""
    import pandas as pd

    frame = pd.DataFrame({"step": list(steps), "timestamp": list(timestamps), "value": list(values)})
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("float64"), unit="s", utc=True)
    return frame


def select_artifacts(records: list[ArtifactRecord], run_id: str, path: str | None) -> list[ArtifactRecord]:
    """Return the records at path (one file or a folder prefix), all of them without a path."""
    if not path:
        return records
    prefix = safe_relpath(path, "artifact path")
    chosen = [r for r in records if r.path == prefix or r.path.startswith(prefix + "/")]
    if not chosen:
        raise NotFoundError(f"run {run_id} has no artifact {path!r}; list them with `forgeml runs artifacts`")
    return chosen


def place_artifacts(records: list[ArtifactRecord], dest: str | Path,
                    fetch: Callable[[ArtifactRecord, Path], Path]) -> list[Path]:
    """Fetch every record beside its place under dest, then rename all into place; a failure leaves none.

    ``fetch(record, part)`` writes the record's verified bytes to part and returns it.
    """
    # a recorded path is checked again here: it may come from an older forgeml or an imported run
    targets = [(r, safe_join(dest, r.path, "artifact path")) for r in records]
    staged: list[tuple[Path, Path]] = []
    try:
        for record, target in targets:
            part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
            staged.append((fetch(record, part), target))
    except BaseException:
        for part, _ in staged:
            part.unlink(missing_ok=True)
        raise
    for part, target in staged:
        os.replace(part, target)
    return [target for _, target in staged]
