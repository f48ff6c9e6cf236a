"""The registry through `forgeml server`: resolve, register, promote, approve and roll back, per role."""

from __future__ import annotations

import io
from typing import Any

import joblib
import pytest
from sklearn.linear_model import LogisticRegression


def _model() -> LogisticRegression:
    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def _register_via_api(server: Any, token: str, name: str) -> dict[str, Any]:
    buf = io.BytesIO()
    joblib.dump(_model(), buf)
    with server.client(token) as c:
        run = c.post("/runs", json={"name": f"train-{name}"}).json()
        assert c.put(f"/runs/{run['id']}/artifacts/model/model.joblib", content=buf.getvalue()).status_code == 201
        r = c.post(f"/models/{name}/versions", json={"run_id": run["id"], "path": "model/model.joblib",
                                                     "flavor": "sklearn", "metrics": {"auc": 0.9}})
        assert r.status_code == 201, r.text
        return r.json()


def test_resolve_stage_alias_and_version(platform: Any) -> None:
    ws, server, tokens = platform
    first = _register_via_api(server, tokens["scientist"], "fraud")
    second = _register_via_api(server, tokens["scientist"], "fraud")
    assert (first["version"], second["version"]) == (1, 2)
    with server.client(tokens["approver"]) as c:
        assert c.post("/models/fraud/versions/1/promote", json={"stage": "PRODUCTION"}).status_code == 200
    with server.client(tokens["scientist"]) as c:
        assert c.put("/models/fraud/aliases/champion", json={"version": 2}).status_code == 200
    with server.client(tokens["viewer"]) as c:
        prod = c.get("/resolve", params={"uri": "fraud@production"}).json()
        assert (prod["version"], prod["stage"]) == (1, "PRODUCTION")
        assert c.get("/resolve", params={"uri": "fraud@champion"}).json()["version"] == 2
        assert c.get("/resolve", params={"uri": "fraud@2"}).json()["aliases"] == ["champion"]
        assert c.get("/resolve", params={"uri": "fraud@latest"}).json()["version"] == 2
        # the artifact URI answers the packed model, whose digest is the one the registry holds
        blob = c.get(prod["artifact_uri"])
        assert blob.status_code == 200 and blob.headers["X-Artifact-Digest"] == prod["artifact_digest"]
        missing = c.get("/resolve", params={"uri": "frad@production"})
        assert missing.status_code == 404 and "did you mean 'fraud'" in missing.json()["error"]
        assert c.get("/resolve", params={"uri": "bad name!"}).status_code == 422


def test_a_change_made_by_another_process_is_seen_on_the_next_resolve(platform: Any) -> None:
    """The server caches resolves; promotions, aliases and registrations made here, in another process
    than the server, must show on the very next request, each one checked right after a cached read."""
    ws, server, tokens = platform
    from forgeml.registry import delete_alias, promote, register_model, set_alias

    for _ in range(2):
        register_model("cached", _model(), workspace=ws)
    promote("cached", 1, "production", reason="first", workspace=ws)

    def resolve(uri: str) -> dict[str, Any]:
        with server.client(tokens["viewer"]) as c:
            answers = [c.get("/resolve", params={"uri": uri}) for _ in range(2)]  # the second is cached
            assert answers[0].json() == answers[1].json()
            return answers[1].json()

    assert resolve("cached@production")["version"] == 1
    promote("cached", 2, "production", reason="second", workspace=ws)
    assert resolve("cached@production")["version"] == 2
    assert resolve("cached@1")["stage"] == "ARCHIVED"
    set_alias("cached", "champion", 1, workspace=ws)
    assert resolve("cached@champion")["version"] == 1
    assert resolve("cached@1")["aliases"] == ["champion"]
    set_alias("cached", "champion", 2, workspace=ws)
    assert resolve("cached@champion")["version"] == 2
    delete_alias("cached", "champion", workspace=ws)
    with server.client(tokens["viewer"]) as c:
        assert c.get("/resolve", params={"uri": "cached@champion"}).status_code == 404
    assert resolve("cached@latest")["version"] == 2
    register_model("cached", _model(), workspace=ws)
    assert resolve("cached@latest")["version"] == 3
    from forgeml.registry import rollback

    rollback("cached", reason="back", workspace=ws)
    assert resolve("cached@production")["version"] == 1


@pytest.mark.parametrize(("role", "register", "stage_ok", "release_ok"), [
    ("viewer", False, False, False), ("scientist", True, True, False),
    ("approver", False, True, True), ("admin", True, True, True)])
def test_each_role_may_do_what_it_is_for(platform: Any, role: str, register: bool, stage_ok: bool,
                                         release_ok: bool) -> None:
    ws, server, tokens = platform
    from forgeml.registry import register_model

    name = f"churn-{role}"
    register_model(name, _model(), workspace=ws)
    register_model(name, _model(), workspace=ws)
    with server.client(tokens[role]) as c:
        r = c.post(f"/models/{name}/versions/1/promote", json={"stage": "CANDIDATE"})
        assert r.status_code == (200 if stage_ok else 403), r.text
        r = c.post(f"/models/{name}/versions/2/promote", json={"stage": "PRODUCTION"})
        assert r.status_code == (200 if release_ok else 403), r.text
        if not release_ok:
            assert "models.release" in r.json()["error"]
        run = c.post("/runs", json={"name": "x"})
        assert run.status_code == (201 if register else 403)
        assert c.get(f"/models/{name}/versions").status_code == 200  # every role reads


def test_rollback_needs_an_approver(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.registry import promote, register_model

    for _ in range(2):
        register_model("ranker", _model(), workspace=ws)
    promote("ranker", 1, workspace=ws)
    promote("ranker", 2, workspace=ws)
    with server.client(tokens["scientist"]) as c:
        assert c.post("/models/ranker/rollback", json={"reason": "bad"}).status_code == 403
    with server.client(tokens["approver"]) as c:
        r = c.post("/models/ranker/rollback", json={"reason": "latency regression"})
        assert r.status_code == 200, r.text
        assert r.json()["model_version"]["version"] == 1
    trail = [(t["actor"], t["action"]) for t in _trail(server, tokens["viewer"], "ranker")]
    assert ("approver-user", "model.rollback") in trail or any(a == "approver-user" for a, _ in trail)


def _trail(server: Any, token: str, name: str) -> list[dict[str, Any]]:
    with server.client(token) as c:
        return c.get(f"/models/{name}/audit").json()["records"]


def test_approvals_gate_counts_only_approvers(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.registry import register_model

    register_model("gated", _model(), workspace=ws)
    with server.client(tokens["scientist"]) as c:  # a scientist may not approve at all
        assert c.post("/models/gated/versions/1/approve", json={"comment": "lgtm"}).status_code == 403
    from forgeml.registry import approve

    approve("gated", 1, reviewer="scientist-user", workspace=ws)  # recorded locally, but not an approver
    with server.client(tokens["approver"]) as c:
        refused = c.post("/models/gated/versions/1/promote", json={"stage": "PRODUCTION"})
        assert refused.status_code == 409 and "approvals" in refused.json()["error"]
        assert c.post("/models/gated/versions/1/approve", json={"comment": "ok"}).status_code == 200
        done = c.post("/models/gated/versions/1/promote", json={"stage": "PRODUCTION"})
        assert done.status_code == 200, done.text
        assert done.json()["gates"][0]["passed"] is True


def test_scoped_token_sees_only_its_models(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.auth import create_token
    from forgeml.registry import register_model

    register_model("fraud-eu", _model(), workspace=ws)
    register_model("other", _model(), workspace=ws)
    token, _ = create_token("approver-user", operations=["models.read", "models.release"], models=["fraud*"],
                            workspace=ws)
    with server.client(token) as c:
        assert c.get("/resolve", params={"uri": "fraud-eu@1"}).status_code == 200
        denied = c.get("/resolve", params={"uri": "other@1"})
        assert denied.status_code == 403 and "not scoped for model 'other'" in denied.json()["error"]
        names = {m["name"] for m in c.get("/models").json()["models"]}
        assert "other" not in names and "fraud-eu" in names
        # in scope for the model, but the token was not given the operation
        assert c.post("/models/fraud-eu/versions/1/approve", json={}).status_code == 403
