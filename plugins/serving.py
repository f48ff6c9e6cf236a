"""Serving settings and the serve/predict commands."""
