"""Online experiments: outcomes that arrive late, sound statistics per arm, replay and off-policy estimates."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "forgeml.feedback.outcomes": ["log_outcome", "log_outcomes", "import_outcomes", "read_outcomes"],
    ".service": ["start_experiment", "analyze", "status", "stop"],
    ".analysis": ["MetricSpec", "Guardrails"],
    ".stats": ["compare_proportions", "compare_means", "compare_ratios", "sample_size", "power_at"],
    ".offpolicy": ["ips", "snips", "doubly_robust"],
    "forgeml.feedback.interleaving": ["team_draft"],
})
