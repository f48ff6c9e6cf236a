"""Evaluation: metrics, slices, fairness, champion vs challenger, backtests."""
