"""Hyperparameter tuning with Optuna: trials as scheduled jobs."""
