"""Training-serving skew: recompute the features a model was served, offline at the logged request times.

The prediction log keeps every feature value a model received (with the entity keys and the request
time). Asking the offline store for the same features at the same instants gives what a training set
built now would hold; any row where the two differ is skew: a transformation that differs between
the paths, events that arrived too late for serving, a stale online store, a wrong join key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import NotFoundError, ValidationError


@dataclass
class FeatureSkew:
    """One feature's comparison: rows compared, mismatches, their share and the largest difference."""

    feature: str
    rows: int
    mismatches: int
    share: float
    max_abs_diff: float | None
    skewed: bool
    severity: str
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SkewReport:
    """Per-feature skew of one model over a stretch of its prediction log."""

    model: str
    rows: int
    features: list[FeatureSkew]

    @property
    def share(self) -> float:
        """The largest per-feature mismatch share (0 when nothing was compared)."""
        return max((f.share for f in self.features), default=0.0)

    @property
    def skewed_features(self) -> list[str]:
        """The features whose mismatch share is above the monitor's threshold."""
        return [f.feature for f in self.features if f.skewed]


def _objects(values: list[Any]) -> Any:
    """Return a 1-D object array, even when the values are lists (which numpy would stack)."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _skew_monitor(workspace: Any) -> Any:
    from forgeml.config import build_settings

    provider = workspace.plugins.provider("monitors", "skew", "skew report")
    tests = workspace.config.section("monitoring").tests or {}
    settings = None
    if provider.settings is not None:
        settings = build_settings(provider.settings, dict(tests.get("skew", {})), "[monitoring.tests.skew]")
    return provider.build(settings, workspace)


def skew_report(model: str, start: Any = None, end: Any = None, workspace: Any = None) -> SkewReport:
    """Compare each served feature value in the log window [start, end) with its offline value at request time."""
    import pyarrow.compute as pc

    from forgeml.features import store_for
    from forgeml.monitoring.sources import _workspace, read_prediction_log
    from forgeml.registry import get_model_version

    ws = _workspace(workspace)
    log = read_prediction_log(model, start, end, workspace=ws)
    if log.num_rows == 0:
        return SkewReport(model, 0, [])
    if "_error" in log.column_names:
        log = log.filter(pc.is_null(log.column("_error")))
    monitor = _skew_monitor(ws)
    store = store_for(ws)
    by_feature: dict[str, list[tuple[Any, Any, Any]]] = {}
    for version in sorted(set(log.column("_version").to_pylist())):
        rows = log.filter(pc.equal(log.column("_version"), version))
        mv = get_model_version(model, int(version), workspace=ws)
        refs, keys = list(mv.feature_views or []), list(mv.entity_keys or [])
        if not refs:
            continue
        missing = [k for k in keys if k not in rows.column_names]
        if missing:
            raise ValidationError(f"the prediction log of {model} v{version} has no entity key column "
                                  f"{missing[0]!r}; skew needs requests that send entity keys")
        served = {ref.partition(":")[2] for ref in refs}
        # request values (an on-demand view's inputs) travel with the keys, as they did at serving time
        extra = [c for c in rows.column_names if not c.startswith("_") and c not in served and c not in keys
                 and c != "event_timestamp"]
        entity = rows.select(keys + extra).append_column("event_timestamp", rows.column("_ts"))
        offline = store.get_historical_features(entity, refs)
        for ref in refs:
            feature = ref.partition(":")[2]
            if feature not in rows.column_names:
                continue  # logged under another name, or never served: nothing to compare
            by_feature.setdefault(feature, []).append((offline.column(feature), rows.column(feature), entity))
    results = []
    for feature, parts in by_feature.items():
        recomputed = _objects([v for off, _, _ in parts for v in off.to_pylist()])
        served_values = _objects([v for _, srv, _ in parts for v in srv.to_pylist()])
        entities = [row for _, _, ent in parts for row in ent.to_pylist()]
        result = monitor.compare(feature, recomputed, served_values)
        examples = [{**entities[i], "served": served_values[i], "offline": recomputed[i]}
                    for i in result.details.get("worst_rows", [])]
        results.append(FeatureSkew(feature, result.details["rows"], result.details["mismatches"], result.statistic,
                                   result.effect_size, result.drifted, result.severity, examples))
    if not results and log.num_rows:
        raise NotFoundError(f"model {model!r}: its logged versions record no feature views, so there is nothing "
                            f"to recompute; register it with feature_views=[...] and entity_keys=[...]")
    return SkewReport(model, log.num_rows, sorted(results, key=lambda f: -f.share))
