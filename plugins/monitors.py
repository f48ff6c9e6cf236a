"""Drift tests: PSI, KS, Jensen-Shannon, chi-squared, MMD."""
