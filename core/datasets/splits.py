"""Deterministic train/validation/test splits: random, by time, or by group key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forgeml.errors import ValidationError

DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _fractions(fractions: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    if fractions is None:
        return dict(DEFAULT_FRACTIONS)
    if not isinstance(fractions, Mapping):
        names = ["train", "validation", "test"][: len(fractions)] if len(fractions) <= 3 else \
            [f"split{i}" for i in range(len(fractions))]
        fractions = dict(zip(names, fractions))
    out = {str(k): float(v) for k, v in fractions.items()}
    if not out or any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValidationError(f"split fractions must be non-negative and sum to 1, got {out}")
    return out


def _cuts(n: int, fractions: dict[str, float]) -> list[int]:
    """Return the end index of each split over n ordered items (the last one always ends at n)."""
    import numpy as np

    ends = np.rint(np.cumsum(list(fractions.values())) * n).astype(int).tolist()
    ends[-1] = n
    return ends


def _to_table(data: Any, workspace: Any) -> tuple[Any, bool]:
    import pyarrow as pa

    if isinstance(data, str):
        from forgeml.datasets.versions import read_dataset

        return read_dataset(data, workspace=workspace), False
    if isinstance(data, pa.Table):
        return data, False
    if type(data).__name__ == "DataFrame":
        return pa.Table.from_pandas(data, preserve_index=False), True
    raise ValidationError(f"cannot split {type(data).__name__}; give a dataset reference, Arrow table or DataFrame")


def split(data: Any, fractions: Mapping[str, float] | Sequence[float] | None = None, *, seed: int = 0,
          by: str = "random", column: str | None = None, workspace: Any = None) -> dict[str, Any]:
    """Split rows into named parts; the same data and seed always give the same parts.

    ``by="random"`` shuffles rows; ``by="time"`` orders by ``column`` (earliest rows train, rows sharing a
    timestamp stay together); ``by="group"`` keeps every row of one ``column`` value in one part.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table, as_pandas = _to_table(data, workspace)
    parts = _fractions(fractions)
    n = table.num_rows
    if by not in ("random", "time", "group"):
        raise ValidationError(f"unknown split kind {by!r}; choices: random, time, group")
    if by != "random":
        if not column:
            raise ValidationError(f"split by {by} needs column=...")
        if column not in table.column_names:
            from forgeml.errors import unknown_name

            raise unknown_name("column", column, table.column_names, f"split by {by}")
        if table[column].null_count:
            raise ValidationError(f"column {column!r} has {table[column].null_count} nulls; split by {by} needs values")
    assignment = np.empty(n, dtype=np.int64)
    if by == "random":
        order = np.random.default_rng(seed).permutation(n)
        start = 0
        for i, end in enumerate(_cuts(n, parts)):
            assignment[order[start:end]] = i
            start = end
    elif by == "time":
        values = table[column].combine_chunks()
        order = np.asarray(pc.sort_indices(values))
        sorted_values = values.take(pa.array(order))
        sorted_np = np.asarray(pc.rank(sorted_values, sort_keys="ascending", tiebreaker="dense"))
        start = 0
        for i, end in enumerate(_cuts(n, parts)):
            if end > start:
                # ties with the last row of this part join it, so no timestamp spans two parts
                end = int(np.searchsorted(sorted_np, sorted_np[end - 1], side="right"))
            end = max(end, start)
            assignment[order[start:end]] = i
            start = end
        assignment[order[start:]] = len(parts) - 1
    else:
        encoded = table[column].combine_chunks().dictionary_encode()
        codes = np.asarray(encoded.indices)
        keys = encoded.dictionary
        # order groups by their sorted key first so the permutation does not depend on row order
        key_rank = np.asarray(pc.rank(keys, sort_keys="ascending", tiebreaker="first")) - 1
        by_key = np.argsort(key_rank)
        shuffled = by_key[np.random.default_rng(seed).permutation(len(keys))]
        sizes = np.bincount(codes, minlength=len(keys))[shuffled]
        cumulative = np.cumsum(sizes)
        group_part = np.empty(len(keys), dtype=np.int64)
        start_group = 0
        for i, end in enumerate(_cuts(n, parts)):
            end_group = int(np.searchsorted(cumulative, end, side="left")) + 1 if end > 0 else 0
            end_group = min(max(end_group, start_group), len(keys)) if i < len(parts) - 1 else len(keys)
            if i < len(parts) - 1 and end_group > start_group:
                # give the boundary group to whichever side leaves the row count closer to the target
                before = cumulative[end_group - 2] if end_group >= 2 else 0
                if abs(before - end) < abs(cumulative[end_group - 1] - end):
                    end_group -= 1
            group_part[shuffled[start_group:end_group]] = i
            start_group = end_group
        assignment = group_part[codes]
    out = {}
    for i, name in enumerate(parts):
        part = table.filter(pa.array(assignment == i))
        out[name] = part.to_pandas() if as_pandas else part
    return out
