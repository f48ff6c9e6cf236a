"""The model registry's settings: per-model promotion gates and stages."""
