"""Feedback from the world: late outcomes joined to served requests, and the experiments' records."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".outcomes": ["log_outcome", "log_outcomes", "import_outcomes", "read_outcomes"],
    ".interleaving": ["Interleaved", "InterleavingTally", "team_draft"],
})
