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


def _failure(*args):
    """Return the one-line error a command fails with (main prints it; here it arrives as the exception)."""
    from forgeml.errors import ForgeError

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0 and isinstance(result.exception, ForgeError), result.output
    return str(result.exception)


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


KEY = "audit-key-0123456789abcdef"


def test_a_keyed_chain_detects_a_consistent_rewrite_without_the_key(workspace, monkeypatch):
    """With FORGEML_AUDIT_KEY set, recomputing the whole chain with sha256 (what an unkeyed chain allows) fails."""
    from forgeml.auth.audit import GENESIS, HEAD_KEY, record_hash, verify

    monkeypatch.setenv("FORGEML_AUDIT_KEY", KEY)
    _some_records(workspace)
    db = workspace.metadata
    result = verify(db)
    assert result.ok and result.keyed == result.chained > 0 and not result.warnings
    # an attacker edits a record and recomputes every hash and the head, as one could on an unkeyed chain
    db.execute("UPDATE audit_log SET actor = ? WHERE actor = ?", ("mallory", "ana"))
    prev = GENESIS
    rows = db.query("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id")
    for r in rows:
        prev = record_hash(prev, r["at"], r["actor"], r["action"], r["subject"], r["detail"])
        db.execute("UPDATE audit_log SET hash = ? WHERE id = ?", (prev, r["id"]))
    db.execute("UPDATE kv SET value = ? WHERE key = ?", (f"{len(rows)}:{prev}", HEAD_KEY))
    assert not verify(db).ok
    assert CliRunner().invoke(cli, ["audit", "verify"]).exit_code != 0


def test_a_keyed_head_detects_records_cut_from_the_end(workspace, monkeypatch):
    """Deleting the newest record and pointing the head at the one before it fails without the key."""
    from forgeml.auth.audit import HEAD_KEY, verify

    monkeypatch.setenv("FORGEML_AUDIT_KEY", KEY)
    _some_records(workspace)
    db = workspace.metadata
    rows = db.query("SELECT id, hash FROM audit_log ORDER BY id")
    db.execute("DELETE FROM audit_log WHERE id = ?", (rows[-1]["id"],))
    db.execute("UPDATE kv SET value = ? WHERE key = ?", (f"{len(rows) - 1}:{rows[-2]['hash']}", HEAD_KEY))
    result = verify(db)
    assert not result.ok and "head" in result.problems[0]


def test_an_unkeyed_chain_still_verifies_warns_and_rekeys(workspace, monkeypatch):
    """An old unkeyed chain verifies with a warning; rekey moves it under the key; old keys rotate out."""
    from forgeml.auth.audit import verify

    monkeypatch.delenv("FORGEML_AUDIT_KEY", raising=False)
    _some_records(workspace)
    before = json.loads(_run("audit", "verify", "--json"))
    assert before["ok"] and before["keyed"] == 0 and "FORGEML_AUDIT_KEY" in before["warnings"][0]
    assert "FORGEML_AUDIT_KEY is not set" in _failure("audit", "rekey")
    monkeypatch.setenv("FORGEML_AUDIT_KEY", KEY)
    _some_records(workspace)  # appends continue the unkeyed chain until an explicit rekey adopts the key
    assert "predates the key" in verify(workspace.metadata).problems[0]
    after = json.loads(_run("audit", "rekey", "--json"))
    assert after["ok"] and after["keyed"] == after["chained"] > before["chained"] and not after["warnings"]
    # rotation: a new key first, the old one second, verifies; rekey; then the old key can go
    monkeypatch.setenv("FORGEML_AUDIT_KEY", "new-audit-key-0123456789," + KEY)
    assert verify(workspace.metadata).ok
    _run("audit", "rekey")
    monkeypatch.setenv("FORGEML_AUDIT_KEY", "new-audit-key-0123456789")
    assert verify(workspace.metadata).ok
    # without any key the keyed chain cannot be checked, and an unkeyed record written now is caught
    monkeypatch.delenv("FORGEML_AUDIT_KEY")
    assert "not in FORGEML_AUDIT_KEY" in verify(workspace.metadata).problems[0]
    _some_records(workspace)
    monkeypatch.setenv("FORGEML_AUDIT_KEY", "new-audit-key-0123456789")
    assert "unkeyed inside the keyed chain" in verify(workspace.metadata).problems[0]


def test_a_tampered_chain_is_not_rekeyed_and_a_short_key_is_refused(workspace, monkeypatch):
    """rekey refuses a chain that does not verify (tampering is never signed); a short key is one line."""
    monkeypatch.delenv("FORGEML_AUDIT_KEY", raising=False)
    _some_records(workspace)
    workspace.metadata.execute("UPDATE audit_log SET actor = ? WHERE actor = ?", ("mallory", "ana"))
    monkeypatch.setenv("FORGEML_AUDIT_KEY", KEY)
    assert "does not verify" in _failure("audit", "rekey")
    monkeypatch.setenv("FORGEML_AUDIT_KEY", "short")
    assert "use at least 16" in _failure("audit", "verify")
