"""Experiment tracking: the [tracking] settings and the runs CLI."""
