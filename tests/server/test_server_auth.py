"""Identities, tokens and access records: hashed at rest, revocation, expiry, 401/403, the local principal."""

from __future__ import annotations

import time
from typing import Any

import pytest


def test_tokens_are_stored_only_as_salted_hashes(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.auth.service import flush_access_log

    flush_access_log(ws)
    dot = ws.root / ".forgeml"
    blobs = b"".join(p.read_bytes() for p in dot.rglob("*") if p.is_file())
    rows = ws.metadata.query("SELECT id, salt, secret_hash FROM auth_tokens")
    assert len({r["salt"] for r in rows}) == len(rows)  # one salt per token
    for token in tokens.values():
        secret = token[len("fml_") + 13:]  # fml_<12 hex>_<secret>; the secret may hold "_"
        assert len(secret) == 43
        assert secret.encode() not in blobs
        assert token.encode() not in blobs


def test_missing_malformed_unknown_and_revoked_tokens_get_401(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.auth import create_token, revoke_token

    good, info = create_token("temp-user", role="viewer", workspace=ws)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for header in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nonsense"},
                   {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer fml_000000000000_" + "x" * 43}):
        r = server.client(None).get("/whoami", headers=header)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), header
    with server.client(good) as c:
        assert c.get("/whoami").json()["roles"] == ["viewer"]
        revoke_token(info.id, workspace=ws)  # from another process: seen within the refresh interval
        deadline = time.monotonic() + 5
        while c.get("/whoami").status_code == 200:
            assert time.monotonic() < deadline, "a revoked token kept working"
            time.sleep(0.1)
        assert "revoked" in c.get("/whoami").json()["error"]


def test_expired_token_is_refused(platform: Any) -> None:
    ws, server, tokens = platform
    from forgeml.auth import create_token

    token, _ = create_token("scientist-user", expires_in_s=0.5, workspace=ws)
    time.sleep(1.2)
    with server.client(token) as c:
        r = c.get("/whoami")
        assert r.status_code == 401 and "expired" in r.json()["error"]


def test_tokens_through_the_api(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["scientist"]) as c:
        mine = c.post("/tokens", json={"operations": ["runs.read"], "expires_in_s": 600}).json()
        assert mine["principal"] == "scientist-user" and mine["token"].startswith("fml_")
        # a scientist may not mint tokens for others, nor grant roles
        assert c.post("/tokens", json={"principal": "someone"}).status_code == 403
        listed = c.get("/tokens").json()["tokens"]
        assert {t["principal"] for t in listed} == {"scientist-user"}
        assert all("secret_hash" not in t and "token" not in t for t in listed)
    with server.client(mine["token"]) as narrow:
        assert narrow.get("/runs").status_code == 200
        assert narrow.post("/runs", json={}).status_code == 403  # scope narrower than the role
        assert narrow.post("/tokens", json={}).status_code == 403  # a scoped token cannot mint more
    with server.client(tokens["admin"]) as c:
        assert c.delete(f"/tokens/{mine['id']}").status_code == 200
        assert c.post("/tokens", json={"principal": "ci-bot", "role": "scientist"}).status_code == 201


def test_every_access_is_recorded_with_who_and_from_where(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["viewer"]) as c:
        c.get("/models")
        c.post("/runs", json={"name": "nope"})
    with server.client(tokens["admin"]) as c:
        records = c.get("/audit", params={"actor": "viewer-user"}).json()["records"]
    actions = {(r["action"], r["detail"]["allowed"]) for r in records}
    assert ("access.models.read", True) in actions
    assert ("access.runs.write", False) in actions
    assert all(r["detail"]["from"] == "127.0.0.1" for r in records)
    with server.client(tokens["viewer"]) as c:
        assert c.get("/audit").status_code == 403


def test_local_principal_obeys_the_same_rules(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TUI's actions call the same services as the server: a viewer OS user cannot promote from it."""
    ws, server, tokens = platform
    from sklearn.dummy import DummyClassifier

    from forgeml.auth import acting_as, authenticate
    from forgeml.auth.service import local_name
    from forgeml.errors import PermissionDeniedError
    from forgeml.registry import register_model
    from forgeml.tui import data as tui_data

    register_model("tui-model", DummyClassifier().fit([[0], [1]], [0, 1]), workspace=ws)
    roles = ws.metadata.query("SELECT role FROM auth_roles WHERE principal = ?", (local_name(),))
    assert [r["role"] for r in roles] == ["admin"]  # the first grant made the OS user admin
    monkeypatch.setattr("forgeml.auth.service.local_name", lambda: "someone-else")
    from forgeml.auth.service import invalidate

    invalidate(ws)
    with pytest.raises(PermissionDeniedError, match="models.release"):
        tui_data.promote(ws, "tui-model", 1)
    with acting_as(authenticate(ws, f"Bearer {tokens['approver']}")):
        assert tui_data.promote(ws, "tui-model", 1).model_version.stage == "PRODUCTION"
