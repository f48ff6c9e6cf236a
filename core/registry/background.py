"""The background sample stored inside a model version: the rows explanations compare against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError

BACKGROUND_FILE = "background.parquet"
MAX_BACKGROUND_ROWS = 100


def as_frame(data: Any, what: str = "data") -> Any:
    """Return a pandas DataFrame for a DataFrame, Arrow table, dict of columns or 2-D array."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, dict):
        return pd.DataFrame({k: v if isinstance(v, list | tuple | np.ndarray) else [v] for k, v in data.items()})
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return pd.DataFrame(data, columns=[f"f{i}" for i in range(data.shape[1])])
    raise ValidationError(f"{what} must be a DataFrame, an Arrow table or a 2-D array, got {type(data).__name__}")


def write_background(folder: Path, data: Any, max_rows: int = MAX_BACKGROUND_ROWS, seed: int = 0) -> int:
    """Write up to max_rows rows of data (a seeded sample) as the model folder's background; return the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = as_frame(data, "background")
    if len(frame) == 0:
        raise ValidationError("background= is empty; give the training rows (or a sample of them)")
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table, Path(folder) / BACKGROUND_FILE)
    return table.num_rows


def read_background(model_version: Any, workspace: Any) -> Any:
    """Return a version's stored background sample as a DataFrame, or None when it has none."""
    import pyarrow.parquet as pq

    from forgeml.registry.models import model_folder

    path = model_folder(workspace, model_version.artifact_digest) / BACKGROUND_FILE
    if not path.exists():
        return None
    return pq.read_table(path).to_pandas()
