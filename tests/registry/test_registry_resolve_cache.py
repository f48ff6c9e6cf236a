"""The resolve cache: a change committed by another process shows on this process's very next resolve,
on SQLite and PostgreSQL alike (the workspace fixture runs both)."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from forgeml.registry import promote, register_model, set_alias
from forgeml.registry.cache import resolved_dict
from forgeml.workspace import Workspace


def _in_child(root: str, action: str) -> None:
    from forgeml.registry import delete_alias, rollback

    ws = Workspace(root)
    if action == "promote":
        promote("m", 2, "production", reason="child", workspace=ws)
    elif action == "alias":
        set_alias("m", "champion", 2, workspace=ws)
    elif action == "unalias":
        delete_alias("m", "champion", workspace=ws)
    elif action == "register":
        from sklearn.dummy import DummyClassifier

        register_model("m", DummyClassifier().fit(np.zeros((2, 1)), [0, 1]), workspace=ws)
    elif action == "rollback":
        rollback("m", reason="child", workspace=ws)
    ws.close()


def _elsewhere(root: object, action: str) -> None:
    process = mp.get_context("spawn").Process(target=_in_child, args=(str(root), action))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0


def test_changes_from_another_process_are_seen_on_the_next_resolve(workspace):
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit(np.zeros((2, 1)), [0, 1])
    for _ in range(2):
        register_model("m", model, workspace=workspace)
    promote("m", 1, "production", workspace=workspace)
    set_alias("m", "champion", 1, workspace=workspace)

    def now(ref: str) -> dict:
        first = resolved_dict("m", ref, workspace)
        assert resolved_dict("m", ref, workspace, cached_only=True) == first  # the second read is the cache's
        return first

    assert (now("production")["version"], now("champion")["version"], now("latest")["version"]) == (1, 1, 2)
    _elsewhere(workspace.root, "promote")
    assert now("production")["version"] == 2 and now("1")["stage"] == "ARCHIVED"
    _elsewhere(workspace.root, "alias")
    assert now("champion")["version"] == 2 and now("2")["aliases"] == ["champion"]
    _elsewhere(workspace.root, "unalias")
    assert resolved_dict("m", "champion", workspace, cached_only=True) is None
    _elsewhere(workspace.root, "register")
    assert now("latest")["version"] == 3
    _elsewhere(workspace.root, "rollback")
    assert now("production")["version"] == 1


def test_a_returned_answer_is_a_copy(workspace):
    from sklearn.dummy import DummyClassifier

    register_model("m", DummyClassifier().fit(np.zeros((2, 1)), [0, 1]), workspace=workspace)
    resolved_dict("m", "1", workspace)["version"] = 99
    assert resolved_dict("m", "1", workspace)["version"] == 1
