"""Tuning settings."""
