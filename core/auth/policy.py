"""Roles, operations and the decision: may this principal perform this operation on this model?"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

# Every operation a door can ask about; a token's scopes name a subset of these.
ACTIONS: dict[str, str] = {
    "runs.read": "read runs, metrics and artifacts",
    "runs.write": "create runs and log params, metrics, tags and artifacts",
    "models.read": "resolve and list model versions, read gate results and the audit trail",
    "models.predict": "ask a served model for predictions",
    "models.register": "register a new model version",
    "models.promote": "move a version to STAGING, CANDIDATE or ARCHIVED, and set aliases",
    "models.approve": "approve a version (what the approvals gate counts)",
    "models.release": "promote a version to PRODUCTION and roll production back",
    "jobs.read": "read jobs, their events and logs",
    "jobs.submit": "submit jobs",
    "jobs.cancel": "cancel and retry jobs",
    "datasets.read": "read dataset versions and their metadata",
    "features.read": "read the feature registry and online feature values",
    "features.push": "push rows to the online and offline feature stores",
    "predictions.read": "read prediction logs",
    "alerts.read": "read alerts",
    "alerts.ack": "acknowledge alerts",
    "auth.admin": "manage principals, roles and tokens, and read the access log",
    "privacy.forget": "erase a data subject from every store, log and snapshot",
}

_READS = ("runs.read", "models.read", "models.predict", "jobs.read", "datasets.read", "features.read",
          "predictions.read", "alerts.read")
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READS),
    "scientist": frozenset((*_READS, "runs.write", "models.register", "models.promote", "jobs.submit",
                            "jobs.cancel", "features.push", "alerts.ack")),
    "approver": frozenset((*_READS, "models.promote", "models.approve", "models.release", "alerts.ack")),
    "admin": frozenset(ACTIONS),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a person or a service token, with its roles and, for a token, its scopes.

    ``operations`` and ``models`` narrow what the roles allow: None means no narrowing; model
    patterns are shell-style (``fraud*``).
    """

    name: str
    kind: str = "user"
    roles: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    operations: frozenset[str] | None = None
    models: tuple[str, ...] | None = None
    address: str = ""


def allowed_actions(roles: frozenset[str] | set[str]) -> frozenset[str]:
    """Return every operation the union of these roles allows."""
    out: set[str] = set()
    for role in roles:
        out |= ROLES.get(role, frozenset())
    return frozenset(out)


def decide(principal: Principal, action: str, model: str | None = None) -> str | None:
    """Return None when the principal may perform action (on model), else the one-line reason it may not."""
    if action not in ACTIONS:
        raise ValueError(f"unknown operation {action!r}")  # a programming error, not a user's
    if action not in allowed_actions(principal.roles):
        roles = ", ".join(sorted(principal.roles)) or "no role"
        holders = sorted(r for r, acts in ROLES.items() if action in acts)
        return (f"{principal.name} ({roles}) may not {ACTIONS[action]} ({action}); "
                f"it needs one of the roles {', '.join(holders)}")
    if principal.operations is not None and action not in principal.operations:
        return (f"token {principal.token_id} of {principal.name} is not scoped for {action}; "
                f"its scopes: {', '.join(sorted(principal.operations)) or 'none'}")
    if model is not None and principal.models is not None:
        if not any(fnmatch.fnmatchcase(model, pattern) for pattern in principal.models):
            return (f"token {principal.token_id} of {principal.name} is not scoped for model {model!r}; "
                    f"its models: {', '.join(principal.models) or 'none'}")
    return None
