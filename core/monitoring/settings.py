"""The [monitoring] section of plugins.toml: default drift tests, alert rules and notifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.config import setting

SEVERITIES = ("info", "warning", "critical")
OPERATORS = (">", ">=", "<", "<=")


@dataclass
class AlertRule:
    """One alert rule: fire when a metric over a window crosses a threshold."""

    name: str = setting(doc="Unique rule name (used to de-duplicate and acknowledge alerts).")
    metric: str = setting(doc="What to watch, e.g. drift_share, score_shift, latency_p99, error_rate, accuracy.")
    threshold: float = setting(doc="The value that fires the rule.")
    model: str = setting("", "The model whose prediction log is watched (the alert's subject).")
    op: str = setting(">", "Comparison: fire when value OP threshold (>, >=, <, <=).")
    window: str = setting("1d", "Window of the prediction log ending now: 15m, 6h, 1d, 7d.")
    severity: str = setting("warning", "info, warning or critical.")
    reference: str = setting("", "Reference dataset for drift metrics (name@vN); empty: the model's training data.")
    columns: list[str] = setting([], "Columns for drift metrics; empty: every shared column.")
    notifiers: list[str] = setting([], "Notifier names to deliver to; empty: all configured notifiers.")
    pipeline: str = setting("", "Pipeline to start when the rule fires (drift-triggered retraining).")


@dataclass
class MonitoringSettings:
    """Monitoring: default drift tests, alert rules and where alerts go."""

    numeric_tests: list[str] = setting(["psi", "ks", "jensen_shannon"], "Drift tests for numeric columns.")
    categorical_tests: list[str] = setting(["chi2", "psi", "jensen_shannon"], "Drift tests for categorical columns.")
    embedding_tests: list[str] = setting(["mmd", "centroid"], "Drift tests for embedding columns.")
    tests: dict[str, dict[str, Any]] | None = setting(
        None, "Per-test settings as [monitoring.tests.NAME] tables, e.g. [monitoring.tests.psi] major = 0.3.")
    score_shift_std: float = setting(2.0, "Alert when a window's mean score moves more than this many reference std.")
    schedule: str = setting("*/15 * * * *", "Cron expression for `forgeml monitor run --watch`.")
    rules: list[AlertRule] | None = setting(
        None, "Alert rules as [[monitoring.rules]] tables: name, metric, threshold, model, window, severity, pipeline.")
    notifiers: dict[str, dict[str, Any]] | None = setting(
        None, "Notifiers as [monitoring.notifiers.NAME] tables: plugin = log|shell|webhook|desktop plus its settings.")

    def check_providers(self, host: Any, prefix: str = "") -> None:
        """Check what the plugin manager must confirm: drift tests, notifiers and alert rules name real providers."""
        from forgeml.monitoring.alerts import check_rules, configured_notifiers
        from forgeml.selection import configure, disabled_offering

        for kind in ("numeric", "categorical", "embedding"):
            for name in getattr(self, f"{kind}_tests"):
                # a test of a disabled plugin is reported when a drift report needs it, not at every open
                if name not in host.providers("monitors") and disabled_offering(host, "monitors", name) is None:
                    host.provider("monitors", name, f"{prefix}[monitoring] {kind}_tests")
        for name, table in (self.tests or {}).items():
            configure(host, "monitors", name, table, f"{prefix}[monitoring.tests.{name}]")
        configured_notifiers(host, self.notifiers or {}, prefix)
        check_rules(self, prefix)
