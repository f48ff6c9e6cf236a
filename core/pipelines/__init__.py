"""Pipelines: steps, DAGs, caching, retries and triggers."""
