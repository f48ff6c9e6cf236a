"""`forgeml serve` says where it listens, what it serves and where the docs are; `/` answers the same."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from serving_support import row

from forgeml.serving import EndpointConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_banner_names_the_address_models_versions_and_docs_and_requests_can_be_logged(sklearn_model, workspace):
    port = _free_port()
    env = {**os.environ, "FORGEML_HOME": str(workspace.root)}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "serve", "clf@production", "--port", str(port),
                             "--access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or "docs:" not in lines[-1] and "--access-log" not in lines[-1] and "logged" not in lines[-1]:
            line = proc.stderr.readline()
            assert line, f"serve exited: {''.join(lines)}"
            lines.append(line.rstrip())
        url = f"http://127.0.0.1:{port}"
        assert lines[0] == f"forgeml serve: listening on {url} (1 worker)"
        assert f"clf: clf@production (v1), batching on -> POST {url}/v1/models/clf/predict" in lines[1]
        assert f"docs: {url}/openapi.json" in lines[2]
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the server never became ready"
            time.sleep(0.05)
        index = httpx.get(url + "/", timeout=5).json()
        assert index["service"] == "forgeml serve" and index["docs"] == "/openapi.json" and index["ready"]
        assert index["models"] == [{"name": "clf", "uri": "clf@production", "version": 1, "ready": True,
                                    "predict": "/v1/models/clf/predict"}]
        assert httpx.post(url + "/v1/models/clf/predict", json={"rows": [row()]}, timeout=10).status_code == 200
        seen = ""
        while "POST /v1/models/clf/predict" not in seen:
            seen = proc.stderr.readline()
            assert seen, "no access log line for the request"
        assert "200" in seen
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_index_hides_what_is_served_without_the_token(sklearn_model, serve):
    from forgeml.serving import ServerOptions

    srv = serve([EndpointConfig("clf", "clf@production")], ServerOptions(token="s3cret"))
    body = srv.client.get("/").json()
    assert body["models"] == [] and body["docs"] == "/openapi.json"
    shown = srv.client.get("/", headers={"authorization": "Bearer s3cret"}).json()
    assert [m["name"] for m in shown["models"]] == ["clf"]
