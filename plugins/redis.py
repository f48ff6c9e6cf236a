"""The Redis online store."""
