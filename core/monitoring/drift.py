"""Drift reports: compare a reference table with a current one, column by column, with every drift test."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from forgeml.config import build_settings
from forgeml.contracts import CategoricalSample, MonitorResult
from forgeml.errors import ValidationError

SEVERITY_ORDER = ("none", "minor", "moderate", "major")
PREDICTION = "_prediction"
# prediction-log columns that describe the request, not the model's inputs
RESERVED = frozenset({"_request_id", "_ts", "_model", "_version", "_arm", "_latency_ms", "_error", "_label"})
DEFAULT_TESTS = {
    "numeric": ["psi", "ks", "jensen_shannon"],
    "categorical": ["chi2", "psi", "jensen_shannon"],
    "embedding": ["mmd", "centroid"],
}


@dataclass
class ColumnDrift:
    """Every test's verdict on one column, and the column's overall verdict."""

    column: str
    kind: str  # numeric, categorical, embedding
    role: str  # feature or prediction
    drifted: bool
    severity: str
    results: list[MonitorResult]
    details: dict[str, Any] = field(default_factory=dict)

    def result(self, test: str) -> MonitorResult | None:
        """Return one test's result, or None when that test did not run on this column."""
        return next((r for r in self.results if r.test == test), None)


@dataclass
class DriftReport:
    """A drift report: one ColumnDrift per compared column, plus sizes and timing."""

    columns: list[ColumnDrift]
    reference_rows: int
    current_rows: int
    elapsed_s: float
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the feature columns judged drifted (the prediction score is reported separately)."""
        return [c.column for c in self.columns if c.drifted and c.role == "feature"]

    @property
    def warnings(self) -> list[str]:
        """One line per column whose current data holds categories the reference never had."""
        out = []
        for c in self.columns:
            unseen = c.details.get("unseen_categories")
            if unseen:
                listed = ", ".join(f"{k!r} ({v:.1%})" for k, v in list(unseen.items())[:5])
                out.append(f"{c.column}: categories the reference never had: {listed}")
        return out

    @property
    def share(self) -> float:
        """Fraction of compared feature columns that drifted."""
        features = [c for c in self.columns if c.role == "feature"]
        return len([c for c in features if c.drifted]) / len(features) if features else 0.0

    @property
    def prediction(self) -> ColumnDrift | None:
        """The prediction score's drift, when both sides carry a score."""
        return next((c for c in self.columns if c.role == "prediction"), None)

    def column(self, name: str) -> ColumnDrift:
        """Return one column's drift or raise NotFoundError."""
        for c in self.columns:
            if c.column == name:
                return c
        from forgeml.errors import unknown_name

        raise unknown_name("column", name, [c.column for c in self.columns])

    def to_pandas(self) -> Any:
        """One row per column and test: statistic, p_value, effect_size, drifted, severity."""
        import pandas as pd

        rows = [
            {"column": c.column, "kind": c.kind, "role": c.role, "test": r.test, "statistic": r.statistic,
             "p_value": r.p_value, "effect_size": r.effect_size, "drifted": r.drifted, "severity": r.severity}
            for c in self.columns for r in c.results
        ]
        return pd.DataFrame(rows, columns=["column", "kind", "role", "test", "statistic", "p_value",
                                           "effect_size", "drifted", "severity"])

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-able values."""
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "elapsed_s": round(self.elapsed_s, 4),
            "share": self.share,
            "drifted_columns": self.drifted_columns,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "columns": [
                {"column": c.column, "kind": c.kind, "role": c.role, "drifted": c.drifted, "severity": c.severity,
                 "details": c.details,
                 "tests": [{"test": r.test, "statistic": r.statistic, "p_value": r.p_value,
                            "effect_size": r.effect_size, "drifted": r.drifted, "severity": r.severity,
                            "details": r.details} for r in c.results]}
                for c in self.columns
            ],
        }


# ---------------------------------------------------------------- inputs
def as_table(data: Any, what: str) -> Any:
    """Turn an Arrow table, a DataFrame or a dataset reference ("name@v3") into an Arrow table."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, str):
        from forgeml.monitoring.sources import read_dataset

        return read_dataset(data)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    raise ValidationError(f"{what}: expected an Arrow table, a pandas DataFrame or a dataset reference "
                          f"like 'name@v3', got {type(data).__name__}")


def column_kind(dtype: Any) -> str | None:
    """Return the drift kind of an Arrow type: numeric, categorical, embedding, or None (not compared)."""
    import pyarrow as pa

    if pa.types.is_boolean(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype) \
            or pa.types.is_dictionary(dtype):
        return "categorical"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if (pa.types.is_list(dtype) or pa.types.is_fixed_size_list(dtype) or pa.types.is_large_list(dtype)) \
            and (pa.types.is_floating(dtype.value_type) or pa.types.is_integer(dtype.value_type)):
        return "embedding"
    return None


def _numeric(col: Any) -> tuple[Any, int]:
    """Return a column's values as a sorted float64 array without nulls/NaNs, and how many were missing."""
    import numpy as np
    import pyarrow.compute as pc

    values = (pc.drop_null(col) if col.null_count else col).to_numpy().astype(np.float64, copy=False)
    nan = np.isnan(values)
    if nan.any():
        values = values[~nan]
    return np.sort(values), len(col) - len(values)


def _categorical(ref: Any, cur: Any) -> tuple[CategoricalSample, CategoricalSample]:
    """Count both columns over one shared category list (nulls become the category "(null)")."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def strings(col: Any) -> Any:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        return pc.fill_null(col.cast(pa.string()), "(null)")

    both = pa.chunked_array(strings(ref).chunks + strings(cur).chunks, type=pa.string())
    encoded = both.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy()
    categories = tuple(encoded.dictionary.to_pylist())
    k, n = len(categories), len(ref)
    ref_counts = np.bincount(codes[:n], minlength=k).astype(np.float64)
    cur_counts = np.bincount(codes[n:], minlength=k).astype(np.float64)
    return CategoricalSample(ref_counts, categories), CategoricalSample(cur_counts, categories)


def _embedding(col: Any) -> Any:
    """Return a list column as a 2-D float array (rows x dims), nulls dropped."""
    import numpy as np
    import pyarrow.compute as pc

    col = pc.drop_null(col)
    rows = col.to_pylist() if col.num_chunks != 1 else None
    if rows is not None:
        return np.asarray(rows, dtype=np.float64)
    arr = col.chunk(0)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    lengths = pc.list_value_length(arr).to_numpy()
    if len(lengths) and (lengths != lengths[0]).any():
        raise ValidationError("embedding column rows must all have the same length")
    return flat.reshape(len(arr), int(lengths[0]) if len(lengths) else 0)


# ---------------------------------------------------------------- monitors
def load_monitors(tests: Sequence[str] | Mapping[str, Mapping[str, Any]] | None,
                  workspace: Any = None) -> dict[str, list[Any]]:
    """Build the monitors to run, by column kind, from names (or name -> settings overrides) and plugins.toml."""
    host, config = _host_and_config(workspace)
    overrides: dict[str, Mapping[str, Any]] = {}
    if config is not None:
        overrides.update(config.tests or {})
        defaults = {"numeric": list(config.numeric_tests), "categorical": list(config.categorical_tests),
                    "embedding": list(config.embedding_tests)}
    else:
        defaults = {k: list(v) for k, v in DEFAULT_TESTS.items()}
    if tests is not None:
        if isinstance(tests, str):
            raise ValidationError(f"tests: give a list of test names, e.g. [{tests!r}]")
        if isinstance(tests, Mapping):
            for name, values in tests.items():
                overrides[name] = {**overrides.get(name, {}), **dict(values or {})}
        names = list(tests)
    else:
        names = []
    by_kind: dict[str, list[Any]] = {"numeric": [], "categorical": [], "embedding": []}
    wanted = names or sorted({n for v in defaults.values() for n in v})
    for name in wanted:
        provider = host.provider("monitors", name, "drift tests")
        values = dict(overrides.get(name, {}))
        settings = build_settings(provider.settings, values, f"[monitoring.tests.{name}]") if provider.settings \
            else None
        monitor = provider.build(settings, workspace)
        for kind in monitor.kinds:
            if names or name in defaults.get(kind, ()):
                by_kind.setdefault(kind, []).append(monitor)
    return by_kind


_fallback_host: Any = None


def _host_and_config(workspace: Any) -> tuple[Any, Any]:
    """Return the plugin host and [monitoring] settings of the workspace (or of no workspace)."""
    global _fallback_host
    if workspace is None:
        from forgeml.errors import WorkspaceError
        from forgeml.workspace import current

        try:
            workspace = current()
        except WorkspaceError:
            if _fallback_host is None:
                from forgeml.plugin_manager import make_plugin_manager

                _fallback_host = make_plugin_manager()
            return _fallback_host, None
    return workspace.plugins, workspace.config.section("monitoring")


# ---------------------------------------------------------------- the report
def drift_report(reference: Any, current: Any, columns: Sequence[str] | None = None,
                 tests: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
                 workspace: Any = None, workers: int | None = None, skip_roles: bool = True,
                 model: str | None = None) -> DriftReport:
    """Compare current data with a reference per column (and the prediction score when both carry one).

    Without ``columns``, identifiers, labels and timestamps (see forgeml.monitoring.roles; ``model``
    names the registered model whose entity keys and feature views decide first) are skipped.
    """
    started = time.perf_counter()
    ref = as_table(reference, "reference")
    cur = as_table(current, "current")
    if ref.num_rows == 0 or cur.num_rows == 0:
        side = "reference" if ref.num_rows == 0 else "current"
        raise ValidationError(f"the {side} sample has no rows; pick a wider window or another dataset")
    shared = [c for c in ref.column_names if c in set(cur.column_names)]
    skipped: dict[str, str] = {}
    if columns is None:
        chosen = [c for c in shared if c not in RESERVED]
        if skip_roles:
            from forgeml.monitoring.roles import column_roles

            roles = column_roles(workspace, model)
            skipped.update({c: roles[c] for c in chosen if c in roles})
            chosen = [c for c in chosen if c not in roles]
    else:
        missing = [c for c in columns if c not in shared]
        if missing:
            from forgeml.errors import did_you_mean

            raise ValidationError(f"column {missing[0]!r} is not in both samples{did_you_mean(missing[0], shared)}; "
                                  f"shared columns: {', '.join(shared)}")
        chosen = list(columns)
    monitors = load_monitors(tests, workspace)
    jobs = []
    for name in chosen:
        kind = column_kind(ref.schema.field(name).type)
        if kind is None:
            skipped[name] = f"type {ref.schema.field(name).type} is not compared"
            continue
        if column_kind(cur.schema.field(name).type) != kind:
            skipped[name] = (f"reference type {ref.schema.field(name).type} and current type "
                             f"{cur.schema.field(name).type} do not match")
            continue
        if not monitors.get(kind):
            skipped[name] = f"no test for {kind} columns was chosen"
            continue
        jobs.append((name, kind))
    if not jobs:
        raise ValidationError("no column to compare: " + ("; ".join(f"{k}: {v}" for k, v in skipped.items())
                                                          or "the samples share no columns"))

    def one(job: tuple[str, str]) -> ColumnDrift:
        name, kind = job
        return compare_column(name, kind, ref.column(name), cur.column(name), monitors[kind])

    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, jobs))
    else:
        results = [one(j) for j in jobs]
    return DriftReport(results, ref.num_rows, cur.num_rows, time.perf_counter() - started, skipped)


def compare_column(name: str, kind: str, ref: Any, cur: Any, monitors: Sequence[Any]) -> ColumnDrift:
    """Run every monitor on one column and combine: drifted when any test says so, at the worst severity."""
    details: dict[str, Any] = {}
    if kind == "numeric":
        a, missing_a = _numeric(ref)
        b, missing_b = _numeric(cur)
        details = {"missing_reference": missing_a / max(len(ref), 1), "missing_current": missing_b / max(len(cur), 1)}
        if len(a) == 0 or len(b) == 0:
            return ColumnDrift(name, kind, _role(name), False, "none", [], {**details, "note": "no values to compare"})
        details.update(mean_reference=float(a.mean()), mean_current=float(b.mean()),
                       std_reference=float(a.std()), std_current=float(b.std()))
    elif kind == "categorical":
        a, b = _categorical(ref, cur)
        total = max(float(b.counts.sum()), 1.0)
        unseen = {c: round(float(n) / total, 4) for c, r, n in zip(a.categories, a.counts, b.counts) if r == 0 and n > 0}
        if unseen:
            details["unseen_categories"] = unseen
    else:
        try:
            a, b = _embedding(ref), _embedding(cur)
        except ValidationError as e:
            raise ValidationError(f"column {name!r}: {e}") from e
    results = [m.compare(name, a, b) for m in monitors]
    worst = max((r.severity for r in results if r.drifted), key=_rank, default="none")
    return ColumnDrift(name, kind, _role(name), any(r.drifted for r in results), worst, results, details)


def _role(name: str) -> str:
    return "prediction" if name == PREDICTION else "feature"


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
