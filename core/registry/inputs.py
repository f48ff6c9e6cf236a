"""Turning prediction inputs into arrays fast, and inferring signatures from an input example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError

META_FILE = "forgeml.json"


def read_meta(path: Path) -> dict[str, Any]:
    """Return the model folder's forgeml.json (flavor, signature, runtime options), or {}."""
    meta = Path(path) / META_FILE
    return json.loads(meta.read_text()) if meta.exists() else {}


def input_columns(path: Path) -> list[str] | None:
    """Return the input column names in signature order, or None when no signature was recorded."""
    inputs = read_meta(path).get("signature", {}).get("inputs")
    return [c["name"] for c in inputs] if inputs else None


def _arrow_type_name(tp: Any) -> str:
    return str(tp)


def infer_inputs(example: Any) -> list[dict[str, Any]]:
    """Infer the input schema (column names and types) from an example batch."""
    import numpy as np
    import pyarrow as pa

    if isinstance(example, pa.Table):
        return [{"name": f.name, "type": _arrow_type_name(f.type)} for f in example.schema]
    if type(example).__name__ == "DataFrame":
        table = pa.Table.from_pandas(example.head(5), preserve_index=False)
        return [{"name": f.name, "type": _arrow_type_name(f.type)} for f in table.schema]
    if isinstance(example, dict):
        table = pa.table({k: v if isinstance(v, list | tuple | np.ndarray) else [v] for k, v in example.items()})
        return [{"name": f.name, "type": _arrow_type_name(f.type)} for f in table.schema]
    if isinstance(example, np.ndarray):
        width = example.shape[1] if example.ndim == 2 else 1
        return [{"name": f"f{i}", "type": str(pa.from_numpy_dtype(example.dtype))} for i in range(width)]
    raise ValidationError(f"cannot infer a signature from {type(example).__name__}; give a DataFrame or Arrow table")


def infer_outputs(prediction: Any) -> list[dict[str, Any]]:
    """Describe a prediction array: dtype and the shape of one row."""
    import numpy as np

    arr = np.asarray(prediction)
    return [{"name": "prediction", "type": str(arr.dtype), "shape": list(arr.shape[1:])}]


def _arrow_matrix(table: Any, np: Any) -> Any:
    """Convert numeric Arrow columns in one call (RecordBatch.to_tensor); mixed types go column by column."""
    import pyarrow as pa

    batch = table
    if isinstance(table, pa.Table):
        batches = table.combine_chunks().to_batches()
        batch = batches[0] if len(batches) == 1 else None
    if batch is not None:
        try:
            return np.asarray(batch.to_tensor(null_to_nan=True, row_major=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError):
            pass  # non-numeric or mixed column types: the general path below handles them
    return np.column_stack([table.column(i).to_numpy(zero_copy_only=False) for i in range(table.num_columns)])


class FeatureMatrix:
    """Converts a DataFrame, Arrow table, dict row or array into a 2-D numpy array in signature order."""

    def __init__(self, columns: list[str] | None, dtype: Any = None):
        self.columns = columns
        self.dtype = dtype

    def __call__(self, inputs: Any) -> Any:
        """Return inputs as a 2-D numpy array with the signature's columns in order."""
        import numpy as np

        cols = self.columns
        if isinstance(inputs, np.ndarray):
            arr = inputs if inputs.ndim == 2 else inputs.reshape(1, -1)
        elif hasattr(inputs, "iloc"):  # pandas DataFrame
            frame = inputs if cols is None or list(inputs.columns) == cols else self._select(inputs, list(inputs.columns))
            arr = frame.to_numpy(dtype=self.dtype)
        elif hasattr(inputs, "column_names"):  # pyarrow Table or RecordBatch
            have = inputs.column_names  # a property that builds a new list on every access
            names = cols or have
            missing = [c for c in names if c not in have] if names is not have and names != have else []
            if missing:
                raise ValidationError(f"input is missing column(s) {', '.join(missing)}; the model expects {names}")
            arr = _arrow_matrix(inputs if names == have else inputs.select(names), np)
        elif isinstance(inputs, dict):
            names = cols or list(inputs)
            try:
                first = inputs[names[0]]
                if isinstance(first, list | tuple | np.ndarray):
                    arr = np.column_stack([np.asarray(inputs[c]) for c in names])
                else:
                    arr = np.array([[inputs[c] for c in names]])
            except KeyError as e:
                raise ValidationError(f"input is missing column {e.args[0]!r}; the model expects {names}") from None
        else:
            raise ValidationError(f"cannot predict on {type(inputs).__name__}; give a DataFrame or Arrow table")
        if self.dtype is not None and arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return arr

    def _select(self, frame: Any, have: list[str]) -> Any:
        missing = [c for c in self.columns or [] if c not in have]
        if missing:
            raise ValidationError(f"input is missing column(s) {', '.join(missing)}; the model expects {self.columns}")
        return frame[self.columns]
