"""The model registry: versions, stages, aliases, promotion gates and audit."""
