"""Monitoring: drift reports, output monitoring, alert rules and notifications."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".alerts": ["Alert", "RuleOutcome", "acknowledge", "evaluate", "get_alert", "list_alerts"],
    ".drift": ["ColumnDrift", "DriftReport", "drift_report"],
    ".output": ["labelled_metrics", "score_windows", "service_metrics"],
    ".sources": ["log_labels", "read_labels", "read_prediction_log"],
})
