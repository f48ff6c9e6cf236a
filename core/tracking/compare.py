"""Compare runs side by side: params and final metrics, with the rows that differ marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Comparison:
    """Runs side by side: one row per attribute, param and metric, one value column per run."""

    run_ids: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"field", "values": [...], "differs"}

    def to_pandas(self) -> pd.DataFrame:
        """Return the comparison as a DataFrame indexed by field, one column per run plus 'differs'."""
        import pandas as pd

        data = {run_id: [row["values"][i] for row in self.rows] for i, run_id in enumerate(self.run_ids)}
        data["differs"] = [row["differs"] for row in self.rows]
        return pd.DataFrame(data, index=pd.Index([row["field"] for row in self.rows], name="field"))


def _differs(values: list[Any]) -> bool:
    return len({repr(v) for v in values}) > 1


def compare_runs(run_ids: Sequence[str], workspace: Any = None) -> Comparison:
    """Compare runs: name, experiment, status, duration, every param and every final metric."""
    from forgeml.tracking.api import _store

    if len(run_ids) < 2:
        raise ValidationError("compare needs at least two runs")
    store = _store(workspace)
    if store.writer.pending():
        store.writer.flush()
    runs = [store.get_run(r) for r in run_ids]
    comparison = Comparison([r.id for r in runs])

    def add(name: str, values: list[Any]) -> None:
        comparison.rows.append({"field": name, "values": values, "differs": _differs(values)})

    add("name", [r.name for r in runs])
    add("experiment", [r.experiment for r in runs])
    add("status", [r.status for r in runs])
    add("duration_s", [None if r.duration_s is None else round(r.duration_s, 3) for r in runs])
    add("git.commit", [r.context.get("git", {}).get("commit") for r in runs])
    for key in sorted({k for r in runs for k in r.params}):
        add(f"params.{key}", [r.params.get(key) for r in runs])
    for key in sorted({k for r in runs for k in r.metrics}):
        add(f"metrics.{key}", [r.metrics.get(key) for r in runs])
    for key in sorted({k for r in runs for k in r.tags}):
        add(f"tags.{key}", [r.tags.get(key) for r in runs])
    return comparison
