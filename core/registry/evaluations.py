"""Evaluation results stored with model versions, and approvals recorded for gates."""

from __future__ import annotations

import time
from typing import Any

from forgeml.auth.service import require
from forgeml.errors import PermissionDeniedError
from forgeml.registry import store as persisted
from forgeml.registry.models import audit, check_name, default_actor, version_number, workspace_or_current
from forgeml.registry.schema import store


def record_evaluation(name: str, version: int, dataset: str, target: str, task: str, metrics: dict[str, Any],
                      result: dict[str, Any], workspace: Any = None) -> int:
    """Store an evaluation of a model version on a dataset version; return its id."""
    db = store(workspace_or_current(workspace))
    with db.transaction() as tx:
        return persisted.add_evaluation(tx, name, version, dataset, target, task, metrics, result, time.time())


def evaluations(name: str, version: int, dataset: str | None = None, workspace: Any = None) -> list[dict[str, Any]]:
    """Return a version's stored evaluations, newest first (optionally on one dataset version)."""
    return persisted.evaluations(store(workspace_or_current(workspace)), name, version, dataset)


def headline(mv: Any, workspace: Any = None) -> dict[str, Any]:
    """Return the numbers every view shows for a version: its newest evaluation, named by dataset.

    The same rule the metric gates follow: the newest stored evaluation, else the metrics given at
    registration (``dataset`` None). The quickstart's summary, ``models ls`` and the TUI all show this.
    """
    found = evaluations(mv.name, mv.version, workspace=workspace)
    if found:
        metrics = {k: float(v) for k, v in found[0]["metrics"].items() if isinstance(v, int | float)}
        return {"metrics": metrics, "dataset": found[0]["dataset"], "source": f"evaluation on {found[0]['dataset']}"}
    return {"metrics": dict(mv.metrics), "dataset": None, "source": "registered metrics"}


def headline_text(numbers: dict[str, Any], keys: int = 3) -> str:
    """Return a headline as one short cell: "roc_auc=0.912 pr_auc=0.41 on fraud_holdout@v1"."""
    shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(numbers["metrics"].items())[:keys])
    if not shown:
        return "-"
    return f"{shown} on {numbers['dataset']}" if numbers["dataset"] else f"{shown} (registered)"


def approve(name: str, version: int | str, reviewer: str | None = None, comment: str = "",
            workspace: Any = None) -> dict[str, Any]:
    """Record a reviewer's approval of a version (what the approvals gate checks)."""
    ws = workspace_or_current(workspace)
    db = store(ws)
    number = version_number(db, check_name(name), version)
    acting = require("models.approve", model=name, workspace=ws, subject=f"models/{name}@{number}")
    if reviewer and acting.kind != "local" and reviewer != acting.name:
        raise PermissionDeniedError(f"{acting.name} may approve only as itself, not as {reviewer!r}")
    reviewer = reviewer or default_actor()
    with db.transaction() as tx:
        persisted.put_approval(tx, name, number, reviewer, comment, time.time())
        audit(tx, reviewer, "model.approve", f"model:{name}@{number}", {"comment": comment})
    return {"name": name, "version": number, "reviewer": reviewer, "comment": comment}


def approvals(name: str, version: int, workspace: Any = None) -> list[dict[str, Any]]:
    """Return the approvals recorded for a version."""
    return persisted.approvals(store(workspace_or_current(workspace)), name, version)


def gate_results(name: str, version: int, workspace: Any = None) -> list[dict[str, Any]]:
    """Return every gate verdict recorded for a version, newest first."""
    return persisted.gate_results(store(workspace_or_current(workspace)), name, version)


def audit_trail(name: str, workspace: Any = None) -> list[dict[str, Any]]:
    """Return the audit records of a model, oldest first."""
    ws = workspace_or_current(workspace)
    from forgeml.auth.store import subject_records

    return subject_records(store(ws), f"model:{name}", f"model:{name}@")


def evaluation_targets(workspace: Any = None) -> dict[str, str]:
    """Return each column any evaluation used as its target (label), with the dataset it was evaluated on."""
    return persisted.evaluation_targets(store(workspace_or_current(workspace)))
