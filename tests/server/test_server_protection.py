"""Server protection: per-token rate limits (429 + Retry-After), body limits, TLS verified by the client."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import ApiServer


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str, str]]:
    """A server with HTTPS from a generated self-signed pair, 5 requests/s per token, a 4 KiB body limit,
    3 rows per online read or push, and 6 for the view `wide`."""
    from forgeml.auth import create_token
    from forgeml.workspace import Workspace

    root = tmp_path_factory.mktemp("tls") / "ws"
    ws = Workspace.init(root)
    text = (root / "plugins.toml").read_text()
    for old, new in (("rate_per_s = 200.0", "rate_per_s = 5.0"), ("burst = 400.0", "burst = 5.0"),
                     ("max_body_bytes = 67108864", "max_body_bytes = 4096"),
                     ("max_rows = 10000\n# Row limit per", "max_rows = 3\n# Row limit per"),
                     ("# view_max_rows =", "view_max_rows = { wide = 6 }")):
        assert old in text, old
        text = text.replace(old, new)
    (root / "plugins.toml").write_text(text)
    one = create_token("alice", role="scientist", workspace=ws)[0]
    two = create_token("bob", role="scientist", workspace=ws)[0]
    ws.close()
    cert = root / ".forgeml" / "server" / "tls" / "cert.pem"
    server = ApiServer(root, "--self-signed", scheme="https", verify=False)
    try:
        server.wait_ready()
        server.verify = ssl.create_default_context(cafile=str(cert))
        yield server, one, two
    finally:
        server.stop()


def test_client_verifies_the_certificate(tls_server: Any) -> None:
    server, token, _ = tls_server
    with server.client(token) as c:  # verification against the generated certificate
        assert c.get("/whoami").json()["name"] == "alice"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(server.url + "/healthz", verify=True)  # the system roots do not know it
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url.replace("https", "http") + "/healthz", timeout=2)
    assert (Path(server.root) / ".forgeml/server/tls/key.pem").stat().st_mode & 0o077 == 0


def test_rate_limit_is_per_token_with_retry_after(tls_server: Any) -> None:
    server, alice, bob = tls_server
    with server.client(alice) as c:
        codes = [c.get("/whoami") for _ in range(12)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in limited[0].json()["error"]
    with server.client(bob) as c:  # another token has its own bucket
        assert c.get("/whoami").status_code == 200


def test_body_limit(tls_server: Any) -> None:
    server, _, bob = tls_server
    import time

    time.sleep(1.0)
    with server.client(bob) as c:
        run = c.post("/runs", json={"name": "big"}).json()
        r = c.put(f"/runs/{run['id']}/artifacts/big.bin", content=b"x" * 10_000)
        assert r.status_code == 413 and "limit" in r.json()["error"]


def test_row_limits_per_view(tls_server: Any) -> None:
    server, _, bob = tls_server
    import time

    time.sleep(1.2)  # a fresh bucket of 5 requests
    rows = [{"user_id": i} for i in range(4)]
    with server.client(bob) as c:
        r = c.post("/features/views/clicks/push", json={"rows": rows})
        assert r.status_code == 413, r.text
        assert r.json()["error"] == ("request of 4 rows for 'clicks' exceeds the limit of 3 rows; "
                                     "split it or raise [server] max_rows")
        r = c.post("/features/online", json={"features": ["clicks:n"], "entities": rows})
        assert r.status_code == 413 and "4 rows for 'clicks'" in r.json()["error"]
        # the view's own limit: 6 rows pass it (and then find no such view), 7 do not
        r = c.post("/features/views/wide/push", json={"rows": rows + rows[:2]})
        assert r.status_code == 404, r.text
        r = c.post("/features/views/wide/push", json={"rows": rows + rows[:3]})
        assert r.status_code == 413 and "[server.view_max_rows] wide" in r.json()["error"]
