"""The serving process with `[serving] principals = true`: forgeml auth tokens, roles, scopes, rate limits."""

from __future__ import annotations

from serving_support import row

from forgeml.serving import EndpointConfig, ServerOptions


def test_roles_scopes_and_rate_limits_decide_who_may_predict(sklearn_model, workspace, serve) -> None:
    from forgeml.auth import create_token
    from forgeml.auth.service import flush_access_log

    viewer, _ = create_token("dashboard", role="viewer", workspace=workspace)
    other_model, _ = create_token("dashboard", models=["fraud*"], workspace=workspace)
    no_predict, _ = create_token("dashboard", operations=["models.read"], workspace=workspace)
    unroled, _ = create_token("stranger", workspace=workspace)
    srv = serve([EndpointConfig("clf", "clf@production")],
                ServerOptions(poll_interval_s=0.2, log_predictions=False, principals=True, rate_per_s=3, burst=3))

    def predict(token: str | None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return srv.client.post("/v1/models/clf/predict", json={"rows": [row()]}, headers=headers)

    assert predict(viewer).status_code == 200
    assert predict(None).status_code == 401
    assert predict(viewer[:-3] + "xyz").status_code == 401
    denied = predict(other_model)
    assert denied.status_code == 403 and "not scoped for model 'clf'" in denied.json()["error"]
    assert predict(no_predict).status_code == 403
    assert "models.predict" in predict(unroled).json()["error"]
    codes = [predict(viewer).status_code for _ in range(6)]
    assert 429 in codes
    limited = predict(viewer)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert srv.client.get("/v1/models", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
    flush_access_log(workspace)
    rows = workspace.metadata.query("SELECT actor, action, subject FROM audit_log WHERE action = ?",
                                    ("access.models.predict",))
    assert {"dashboard", "stranger"} <= {r["actor"] for r in rows}
    assert all(r["subject"] == "models/clf/predict" for r in rows)
