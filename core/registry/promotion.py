"""Stage transitions: gated promotion, archive and rollback, each one transaction with its audit record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from forgeml.auth.service import require
from forgeml.client import remote
from forgeml.contracts import GateResult
from forgeml.errors import (
    ForgeError,
    GateFailedError,
    NotFoundError,
    PromotionConflictError,
    ValidationError,
)
from forgeml.registry import store as persisted
from forgeml.registry.cache import bump as bump_generation
from forgeml.registry.models import (
    ModelVersion,
    audit,
    check_name,
    default_actor,
    get_model_version,
    normalize_stage,
    version_number,
    workspace_or_current,
)
from forgeml.registry.schema import store
from forgeml.registry.settings import configured_gate


@dataclass
class PromotionContext:
    """What a gate sees: the version, the stage asked for, the current production version, who and why."""

    workspace: Any
    model_version: ModelVersion
    stage: str
    production: ModelVersion | None
    actor: str
    reason: str = ""


@dataclass
class PromotionResult:
    """The outcome of a promotion: the version as it now is, what it replaced and every gate verdict."""

    model_version: ModelVersion
    old_stage: str
    archived: ModelVersion | None = None
    gates: list[GateResult] = field(default_factory=list)


def configured_gates(ws: Any, name: str) -> list[dict[str, Any]]:
    """Return the gate tables plugins.toml configures for a model ([registry.models.NAME] gates)."""
    if "registry" not in ws.plugins.settings_sections():
        return []
    settings = ws.config.section("registry")
    model = (settings.models or {}).get(name)
    return [dict(g) for g in (model.gates if model else [])]


def run_gates(ctx: PromotionContext) -> list[GateResult]:
    """Run every gate configured for the model that applies to the target stage and return the verdicts."""
    ws = ctx.workspace
    results = []
    for i, table in enumerate(configured_gates(ws, ctx.model_version.name)):
        where = f"[registry.models.{ctx.model_version.name}] gates[{i}]"
        provider, settings, stages = configured_gate(ws.plugins, table, where)
        if ctx.stage not in [normalize_stage(s) for s in stages]:
            continue
        gate_name = provider.name
        gate = provider.build(settings, ws)
        try:
            result = gate.check(ctx)
        except ForgeError as e:
            result = GateResult(gate_name, False, f"gate could not decide: {e}")
        except Exception as e:  # a broken gate must block the promotion, not crash it or let it through
            result = GateResult(gate_name, False, f"gate raised {type(e).__name__}: {e}")
        results.append(result)
    return results


def _set_stage(tx: Any, name: str, version: int, stage: str, now: float) -> None:
    persisted.set_stage(tx, name, version, stage, now)
    bump_generation(tx)  # cached resolves in every process must see the new stage


def promote(name: str, version: int | str, stage: str = "PRODUCTION", actor: str | None = None, reason: str = "",
            workspace: Any = None) -> PromotionResult:
    """Move a version to a stage after every configured gate passes; one transaction, audited, announced.

    Promoting to PRODUCTION archives the previous production version (still loadable). Failing gates
    raise GateFailedError listing them; a promotion that raced another raises PromotionConflictError.
    """
    if workspace is None and (client := remote()) is not None:
        from forgeml.registry import remote as via_server

        return via_server.promote(client, check_name(name), version, stage, reason)
    ws = workspace_or_current(workspace)
    db = store(ws)
    check_name(name)
    target = normalize_stage(stage)
    require("models.release" if target == "PRODUCTION" else "models.promote", model=name, workspace=ws,
            subject=f"models/{name}@{version}")
    actor = actor or default_actor()
    number = version_number(db, name, version)
    mv = get_model_version(name, number, workspace=ws)
    if mv.stage == target:
        raise ValidationError(f"{mv.uri} is already in {target}")
    prod_number = persisted.production_version(db, name)
    production = get_model_version(name, prod_number, workspace=ws) if prod_number is not None else None
    ctx = PromotionContext(ws, mv, target, production, actor, reason)
    results = run_gates(ctx) if target != "ARCHIVED" else []
    failed = [r for r in results if not r.passed]
    now = time.time()
    archived_number = None
    with db.transaction() as tx:
        if persisted.stage_of(tx, name, number) != mv.stage or persisted.production_version(tx, name) != prod_number:
            raise PromotionConflictError(
                f"{mv.uri}: the registry changed while its gates ran (another promotion of {name!r} committed "
                "first); nothing was changed; look at `forgeml models show` and retry if still wanted"
            )
        persisted.add_gate_results(tx, [
            {"name": name, "version": number, "stage": target, "gate": r.gate, "passed": r.passed,
             "message": r.message, "details": r.details, "at": now} for r in results])
        gates_detail = [{"gate": r.gate, "passed": r.passed, "message": r.message} for r in results]
        if failed:
            audit(tx, actor, "model.promote_refused", f"model:{name}@{number}",
                  {"from": mv.stage, "to": target, "reason": reason, "gates": gates_detail})
        else:
            if target == "PRODUCTION" and prod_number is not None:
                archived_number = prod_number
                _set_stage(tx, name, prod_number, "ARCHIVED", now)
                persisted.end_production(tx, name, prod_number, now, "replaced")
                audit(tx, actor, "model.stage", f"model:{name}@{prod_number}",
                      {"from": "PRODUCTION", "to": "ARCHIVED", "reason": f"replaced by version {number}"})
            if mv.stage == "PRODUCTION":
                persisted.end_production(tx, name, number, now, target.lower())
            if target == "PRODUCTION":
                persisted.start_production(tx, name, number, now)
            _set_stage(tx, name, number, target, now)
            audit(tx, actor, "model.stage", f"model:{name}@{number}",
                  {"from": mv.stage, "to": target, "reason": reason, "gates": gates_detail})
    if failed:
        lines = "; ".join(f"{r.gate}: {r.message}" for r in failed)
        raise GateFailedError(f"promotion of {mv.uri} to {target} refused, {len(failed)} of {len(results)} gates "
                              f"failed: {lines}")
    archived = None
    if archived_number is not None:
        archived = get_model_version(name, archived_number, workspace=ws)
        ws.plugins.on_model_stage_changed(model_version=archived, old_stage="PRODUCTION", new_stage="ARCHIVED",
                                          reason=f"replaced by version {number}", workspace=ws)
    moved = get_model_version(name, number, workspace=ws)
    ws.plugins.on_model_stage_changed(model_version=moved, old_stage=mv.stage, new_stage=target, reason=reason,
                                      workspace=ws)
    return PromotionResult(moved, mv.stage, archived, results)


def archive(name: str, version: int | str, actor: str | None = None, reason: str = "",
            workspace: Any = None) -> PromotionResult:
    """Move a version to ARCHIVED (no gates); it stays loadable."""
    return promote(name, version, "ARCHIVED", actor=actor, reason=reason, workspace=workspace)


def rollback(name: str, actor: str | None = None, reason: str = "", workspace: Any = None) -> PromotionResult:
    """Restore the previous production version and archive the current one, in one transaction."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.registry import remote as via_server

        return via_server.rollback(client, check_name(name), reason)
    ws = workspace_or_current(workspace)
    db = store(ws)
    check_name(name)
    require("models.release", model=name, workspace=ws)
    version_number(db, name, "latest")  # an unknown model gets the did-you-mean error
    actor = actor or default_actor()
    now = time.time()
    with db.transaction() as tx:
        current = persisted.production_version(tx, name)
        if current is None:
            raise NotFoundError(f"model {name!r} has no version in PRODUCTION to roll back")
        previous = persisted.last_replaced(tx, name, current)
        if previous is None:
            raise NotFoundError(f"model {name!r} has no earlier production version to roll back to")
        prev = previous["version"]
        old_stage = persisted.stage_of(tx, name, prev)
        _set_stage(tx, name, current, "ARCHIVED", now)
        persisted.end_production(tx, name, current, now, "rolled_back")
        # the restored version's old stint must not be a rollback target again
        persisted.mark_restored(tx, previous["id"])
        persisted.start_production(tx, name, prev, now)
        _set_stage(tx, name, prev, "PRODUCTION", now)
        why = reason or f"rollback from version {current}"
        audit(tx, actor, "model.rollback", f"model:{name}@{current}",
              {"from": "PRODUCTION", "to": "ARCHIVED", "reason": why, "restored": prev})
        audit(tx, actor, "model.rollback", f"model:{name}@{prev}",
              {"from": old_stage, "to": "PRODUCTION", "reason": why, "replaces": current})
    archived = get_model_version(name, current, workspace=ws)
    restored = get_model_version(name, prev, workspace=ws)
    ws.plugins.on_model_stage_changed(model_version=archived, old_stage="PRODUCTION", new_stage="ARCHIVED",
                                      reason=why, workspace=ws)
    ws.plugins.on_model_stage_changed(model_version=restored, old_stage=old_stage, new_stage="PRODUCTION",
                                      reason=why, workspace=ws)
    return PromotionResult(restored, old_stage, archived, [])


def production_history(name: str, workspace: Any = None) -> list[dict[str, Any]]:
    """Return every production period of a model, oldest first: version, started_at, ended_at, ended_by."""
    ws = workspace_or_current(workspace)
    return persisted.production_periods(store(ws), name)


def production_at(name: str, at: float, workspace: Any = None) -> int | None:
    """Return the version that served production at epoch time ``at`` (None when none did)."""
    for period in reversed(production_history(name, workspace)):
        if period["started_at"] <= at and (period["ended_at"] is None or at < period["ended_at"]):
            return int(period["version"])
    return None
