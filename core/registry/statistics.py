"""Training statistics stored inside a model version: per column, the mean (numbers) or the mode (others)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

STATISTICS_FILE = "training_stats.json"
MAX_CATEGORIES = 1000  # a text column with more distinct values keeps only its mode


def column_statistics(data: Any, training: bool = False) -> dict[str, dict[str, Any]]:
    """Return each column's count and mean, std, min and max (numbers) or mode (anything else).

    With ``training`` (the rows are the training data, not a sample), each column is marked so, and a
    text column with at most MAX_CATEGORIES distinct values keeps them: serving warns about a value
    outside what training saw only from such statistics.
    """
    import pandas as pd

    from forgeml.registry.background import as_frame

    frame = as_frame(data, "training data")
    out: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        column = frame[name].dropna()
        if len(column) == 0:
            continue
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.astype("float64")
            stats = {"kind": "number", "count": int(len(values)), "mean": float(values.mean()),
                     "std": float(values.std(ddof=0)), "min": float(values.min()), "max": float(values.max())}
            if not all(math.isfinite(stats[k]) for k in ("mean", "std")):
                continue
        else:
            mode = column.mode().iloc[0]
            stats = {"kind": "category", "count": int(len(column)), "mode": mode.item() if hasattr(mode, "item")
                     else mode}
            if training:
                seen = column.astype(str).unique()
                if len(seen) <= MAX_CATEGORIES:
                    stats["values"] = sorted(seen.tolist())
        if training:
            stats["training"] = True
        out[str(name)] = stats
    return out


def write_statistics(folder: Path, data: Any, training: bool = False) -> dict[str, dict[str, Any]]:
    """Store the columns' statistics in a model folder (``training``: from the training data); return them."""
    stats = column_statistics(data, training)
    (Path(folder) / STATISTICS_FILE).write_text(json.dumps(stats, sort_keys=True, default=str))
    return stats


def read_statistics(model_version: Any, workspace: Any) -> dict[str, dict[str, Any]]:
    """Return a version's stored training statistics ({} when it was registered without training rows)."""
    from forgeml.registry.models import model_folder, workspace_or_current

    path = model_folder(workspace_or_current(workspace), model_version.artifact_digest) / STATISTICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def typical_values(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The value that stands in for a missing one: the mean of a number column, the mode of any other."""
    return {name: s["mean"] if s["kind"] == "number" else s["mode"] for name, s in stats.items()}
