"""Evaluation: metrics, slices, fairness, champion vs challenger, backtests."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".compare": ["BacktestWindow", "Comparison", "MetricComparison", "backtest", "compare"],
    ".evaluate": ["EvaluationResult", "evaluate"],
    ".fairness": ["fairness_report"],
    ".metrics": ["classification_metrics", "expected_calibration_error", "ranking_metrics",
        "regression_metrics"],
})
