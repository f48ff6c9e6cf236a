"""The model registry: versions, stages, aliases, promotion gates and audit."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".evaluations": ["approvals", "approve", "audit_trail", "evaluations", "gate_results", "headline",
                     "headline_text", "record_evaluation"],
    ".models": ["STAGES", "ModelVersion", "delete_alias", "get_model_version", "list_models",
        "list_versions", "load_model", "register_model", "resolve", "set_alias"],
    ".promotion": ["PromotionContext", "PromotionResult", "archive", "promote", "rollback"],
})
