"""Evaluation: metrics, slices, fairness, champion vs challenger, backtests."""

from forgeml.evaluation.compare import BacktestWindow, Comparison, MetricComparison, backtest, compare
from forgeml.evaluation.evaluate import EvaluationResult, evaluate, fairness_report
from forgeml.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    ranking_metrics,
    regression_metrics,
)

__all__ = [
    "BacktestWindow", "Comparison", "EvaluationResult", "MetricComparison", "backtest", "classification_metrics",
    "compare", "evaluate", "expected_calibration_error", "fairness_report", "ranking_metrics",
    "regression_metrics",
]
