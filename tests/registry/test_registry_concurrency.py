"""Concurrent promotions of one model from several processes: exactly one wins and no state is torn."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from forgeml.registry import audit_trail, list_versions, promote, register_model
from forgeml.workspace import Workspace, set_current

WORKERS = 4


def _promote_in_child(root, version, barrier, results):
    from forgeml.errors import ForgeError, PromotionConflictError

    ws = Workspace(root)
    barrier.wait(timeout=60)
    try:
        promote("m", version, "production", actor=f"worker{version}", workspace=ws)
        results.put((version, "won"))
    except PromotionConflictError:
        results.put((version, "conflict"))
    except ForgeError as e:
        results.put((version, f"error: {e}"))


def _race(root, versions):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(versions)), ctx.Queue()
    procs = [ctx.Process(target=_promote_in_child, args=(str(root), v, barrier, results)) for v in versions]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return outcomes


@pytest.fixture
def raced(workspace):
    from sklearn.dummy import DummyClassifier

    path = workspace.root / "plugins.toml"
    # a gate that takes a while, so every worker reads the registry before any of them commits
    path.write_text(path.read_text() + '\n[registry.models.m]\ngates = [{ gate = "command", run = "sleep 1.5" }]\n')
    ws = Workspace(workspace.root)
    set_current(ws)
    model = DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
    for _ in range(WORKERS + 1):
        register_model("m", model, workspace=ws)
    promote("m", 1, "production", workspace=ws)
    return ws


def _check_consistent(ws, winner):
    stages = {v.version: v.stage for v in list_versions("m", workspace=ws)}
    assert [v for v, s in stages.items() if s == "PRODUCTION"] == [winner]
    assert stages[1] == "ARCHIVED"
    open_stints = ws.metadata.query("SELECT version FROM registry_production_history WHERE name = 'm'"
                                    " AND ended_at IS NULL")
    assert [r["version"] for r in open_stints] == [winner]
    to_prod = [a for a in audit_trail("m", workspace=ws)
               if a["action"] == "model.stage" and a["detail"]["to"] == "PRODUCTION"]
    assert [a["subject"] for a in to_prod] == ["model:m@1", f"model:m@{winner}"]


def test_different_versions_race_to_production(raced):
    outcomes = _race(raced.root, list(range(2, WORKERS + 2)))
    winners = [v for v, o in outcomes.items() if o == "won"]
    assert len(winners) == 1, outcomes
    assert all(o == "conflict" for v, o in outcomes.items() if v != winners[0]), outcomes
    _check_consistent(raced, winners[0])


def test_same_version_promoted_by_everyone(raced):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_promote_in_child, args=(str(raced.root), 3, barrier, results))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120)[1] for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("conflict") == WORKERS - 1, outcomes
    _check_consistent(raced, 3)
