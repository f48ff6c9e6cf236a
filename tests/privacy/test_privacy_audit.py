"""The audit log is hash-chained: edits, deletions and records slipped in are detected; queries filter it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from forgeml.cli import cli


def _run(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def _some_records(workspace):
    from forgeml.auth.policy import Principal
    from forgeml.auth.service import acting_as, flush_access_log, require

    with acting_as(Principal("ana", roles=frozenset({"viewer"}))):
        require("datasets.read", workspace=workspace, subject="datasets/people")
    with acting_as(Principal("bo", roles=frozenset({"viewer"}))):
        require("features.read", workspace=workspace, subject="features/profile")
    flush_access_log(workspace)


def test_an_untouched_log_verifies_and_queries_filter(workspace):
    """verify passes on a fresh chain; ls filters by actor, action and subject."""
    _some_records(workspace)
    assert json.loads(_run("audit", "verify", "--json"))["ok"] is True
    who = json.loads(_run("audit", "ls", "--subject", "datasets/people", "--json"))
    assert [r["actor"] for r in who] == ["ana"]
    assert [r["subject"] for r in json.loads(_run("audit", "ls", "--actor", "bo", "--since", "1h", "--json"))] == [
        "features/profile"]
    assert json.loads(_run("audit", "ls", "--action", "access.features", "--until", "2000-01-01", "--json")) == []


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last", "insert"])
def test_tampering_is_detected(workspace, tamper):
    """Editing a record, deleting one (in the middle or at the end) or inserting one fails verify."""
    from forgeml.auth.audit import verify

    _some_records(workspace)
    _some_records(workspace)
    db = workspace.metadata
    ids = [r["id"] for r in db.query("SELECT id FROM audit_log ORDER BY id")]
    if tamper == "edit":
        db.execute("UPDATE audit_log SET actor = ? WHERE id = ?", ("mallory", ids[1]))
    elif tamper == "delete_middle":
        db.execute("DELETE FROM audit_log WHERE id = ?", (ids[1],))
    elif tamper == "delete_last":
        db.execute("DELETE FROM audit_log WHERE id = ?", (ids[-1],))
    else:
        db.execute("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                   (1.0, "mallory", "access.runs.read", "runs", "{}"))
    result = verify(db)
    assert not result.ok and result.problems
    output = CliRunner().invoke(cli, ["audit", "verify"])
    assert output.exit_code != 0


def test_models_history_answers_which_version_served_then(workspace):
    """history --at names the production version at a past moment, and none before the first release."""
    import time

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import promote, register_model
    from forgeml.registry.promotion import production_at

    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    for _ in range(2):
        register_model("churn", model, workspace=workspace)
    before = time.time()
    promote("churn", 1, "PRODUCTION", workspace=workspace)
    between = time.time()
    time.sleep(0.01)
    promote("churn", 2, "PRODUCTION", workspace=workspace)
    assert production_at("churn", before - 60, workspace=workspace) is None
    assert production_at("churn", between, workspace=workspace) == 1
    assert production_at("churn", time.time(), workspace=workspace) == 2
    rows = json.loads(_run("models", "history", "churn", "--json"))
    assert [r["version"] for r in rows] == [1, 2] and rows[0]["ended_at"] is not None
