"""The feature store: definitions, point-in-time joins, materialization and online reads."""
