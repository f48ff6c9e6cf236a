"""Monitoring: drift reports, output monitoring, alert rules and notifications."""

from forgeml.monitoring.alerts import Alert, RuleOutcome, acknowledge, evaluate, get_alert, list_alerts
from forgeml.monitoring.drift import ColumnDrift, DriftReport, drift_report
from forgeml.monitoring.output import labelled_metrics, score_windows, service_metrics
from forgeml.monitoring.sources import log_labels, read_labels, read_prediction_log

__all__ = ["Alert", "ColumnDrift", "DriftReport", "RuleOutcome", "acknowledge", "drift_report", "evaluate",
           "get_alert", "labelled_metrics", "list_alerts", "log_labels", "read_labels", "read_prediction_log",
           "score_windows", "service_metrics"]
