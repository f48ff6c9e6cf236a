"""The model registry: versions, stages, aliases, promotion gates and audit."""

from forgeml.registry.evaluations import (
    approvals,
    approve,
    audit_trail,
    evaluations,
    gate_results,
    record_evaluation,
)
from forgeml.registry.models import (
    STAGES,
    ModelVersion,
    delete_alias,
    get_model_version,
    list_models,
    list_versions,
    load_model,
    register_model,
    resolve,
    set_alias,
)
from forgeml.registry.promotion import PromotionContext, PromotionResult, archive, promote, rollback

__all__ = [
    "STAGES", "ModelVersion", "PromotionContext", "PromotionResult", "approvals", "approve", "archive",
    "audit_trail", "delete_alias", "evaluations", "gate_results", "get_model_version", "list_models",
    "list_versions", "load_model", "promote", "record_evaluation", "register_model", "resolve", "rollback",
    "set_alias",
]
