"""The server over real HTTP: predict by rows, readiness, metrics, the log, and every bad-input path."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from serving_support import FEATURES, SlowToLoad, register_function, row, training_frame

from forgeml.serving import EndpointConfig, ServerOptions, read_prediction_log


def test_predict_rows_answers_with_the_model_and_its_version(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")])
    x, _ = training_frame(seed=7)
    rows = x.head(4).to_dict("records")
    r = srv.predict("clf", {"rows": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    from forgeml.registry import load_model

    expected = np.asarray(load_model("clf@1").predict(x.head(4))).tolist()
    assert body["predictions"] == expected
    assert body["version"] == 1 and body["model"] == "clf" and body["arm"] == "primary"
    assert srv.client.get("/v1/models").json()["models"][0]["arms"]["primary"]["version"] == 1


def test_readiness_turns_true_only_after_loading_and_warming(workspace, serve):
    from forgeml.registry import promote

    mv = register_function("slow", SlowToLoad())
    promote("slow", mv.version, "production", reason="test")
    srv = serve([EndpointConfig("slow", "slow@production")], ready=False)
    assert srv.client.get("/healthz").status_code == 200
    not_ready = srv.client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["models"] == {"slow": False}
    early = srv.predict("slow", {"rows": [{"x": 1.0}]})
    assert early.status_code == 503 and early.headers["retry-after"] == "1"
    srv.wait_ready()
    assert srv.predict("slow", {"rows": [{"x": 3.0}]}).json()["predictions"] == [6.0]


def test_metrics_count_requests_latency_and_batches(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")])
    for _ in range(5):
        assert srv.predict("clf", {"rows": [row(), row(-1.0)]}).status_code == 200
    assert srv.predict("clf", {"rows": [{"f0": 1}]}).status_code == 422
    text = srv.client.get("/metrics").text
    assert 'forgeml_serving_requests_total{arm="primary",model="clf",status="ok",version="1"} 5.0' in text
    assert 'forgeml_serving_rows_total{arm="primary",model="clf",version="1"} 10.0' in text
    assert "forgeml_serving_predlog_write_errors 0.0" in text
    assert re.search(r'forgeml_serving_request_latency_seconds_count\{arm="primary",model="clf",version="1"\} 5\.0',
                     text)
    # five 2-row batches (the warm-up call is not counted)
    assert re.search(r'forgeml_serving_batch_size_sum\{model="clf",version="1"\} 10\.0', text)
    assert 'forgeml_serving_rejected_requests_total{reason="schema"} 1.0' in text
    assert 'forgeml_serving_model_version{arm="primary",model="clf"} 1.0' in text


def test_every_prediction_is_logged_with_inputs_arm_and_latency(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")])
    ids = []
    for i in range(3):
        r = srv.predict("clf", {"rows": [row(i), row(-i)]}, headers={"x-request-id": f"req-{i}"})
        ids.append(r.json()["request_id"])
    srv.stop()  # shutdown flushes the log
    table = read_prediction_log("clf")
    assert table.num_rows == 6
    frame = table.to_pandas()
    assert sorted(set(frame["_request_id"])) == ["req-0", "req-1", "req-2"] == sorted(ids)
    assert set(FEATURES) <= set(frame.columns)
    assert (frame["_arm"] == "primary").all() and (frame["_version"] == 1).all()
    assert (frame["_latency_ms"] > 0).all() and frame["_error"].isna().all()
    assert frame.loc[frame["_request_id"] == "req-2", "f0"].tolist() == [2.0, -2.0]
    assert str(table.schema.field("_ts").type) == "timestamp[us, tz=UTC]"
    future = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)
    assert read_prediction_log("clf", start=future).num_rows == 0
    assert read_prediction_log("clf", end=future).num_rows == 6


SCHEMA_MISMATCHES = [
    ({"rows": [{"f0": 1.0}]}, "rows[0].f1"),
    ({"rows": [{**row(), "f3": "abc"}]}, "rows[0].f3"),
    ({"rows": [{**row(), "f2": True}]}, "rows[0].f2"),
    ({"rows": [{**row(), "f2": None}]}, "rows[0].f2"),
    ({"rows": [{**row(), "color": 1}]}, "rows[0].color"),
    ({"rows": [row(), [1, 2]]}, "rows[1]"),
    ({"rows": []}, "rows"),
    ({"rows": {"f0": 1}}, "rows"),
    ({}, "body"),
    ({"rows": [row()], "entities": [{"id": 1}]}, "body"),
    ({"entities": [{"id": 1}]}, "entities"),
    ([row()], "body"),
]


def test_schema_mismatch_is_422_naming_the_field(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")])
    for body, field in SCHEMA_MISMATCHES:
        r = srv.predict("clf", body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, body
        assert field.split(".")[-1].split("[")[0] in r.json()["error"]
    assert srv.predict("clf", {"rows": [row()]}).status_code == 200


def test_malformed_json_unknown_model_and_oversized_bodies(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")], ServerOptions(max_body_bytes=2_000))
    for bad in (b"{", b"not json", b"", b"\xff\xfe", b'{"rows": [NaN]}'):
        r = srv.client.post("/v1/models/clf/predict", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 400, (bad, r.text)
        assert "not valid JSON" in r.json()["error"]
    r = srv.predict("clx", {"rows": [row()]})
    assert r.status_code == 404 and "did you mean 'clf'" in r.json()["error"]
    big = {"rows": [row()] * 100}
    r = srv.predict("clf", big)
    assert r.status_code == 413 and "2000-byte limit" in r.json()["error"]

    def chunks():
        for _ in range(100):
            yield b'{"rows": [' + b" " * 100

    r = srv.client.post("/v1/models/clf/predict", content=chunks())  # chunked: no Content-Length
    assert r.status_code == 413
    assert srv.client.get("/v1/models/clf/predict").status_code == 405
    assert srv.client.get("/nope").status_code == 404
    assert srv.predict("clf", {"rows": [row()]}).status_code == 200  # still serving


def test_rows_beyond_the_endpoints_limit_are_413_before_any_work(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production", max_rows=3)])
    r = srv.predict("clf", {"rows": [row()] * 4})
    assert r.status_code == 413
    assert r.json()["error"] == ("request of 4 rows exceeds model 'clf''s limit of 3 rows per request; "
                                 "split it or raise [serving.endpoints.clf] max_rows")
    assert r.json()["max_rows"] == 3
    assert srv.predict("clf", {"entities": [{"id": 1}] * 5}).status_code == 413
    assert len(srv.predict("clf", {"rows": [row()] * 3}).json()["predictions"]) == 3
    assert 'forgeml_serving_rejected_requests_total{reason="too_many_rows"} 2.0' in srv.client.get("/metrics").text


def test_bearer_token_guards_predictions_but_not_probes(sklearn_model, serve):
    srv = serve([EndpointConfig("clf", "clf@production")], ServerOptions(token="s3cret"))
    assert srv.predict("clf", {"rows": [row()]}).status_code == 401
    assert srv.predict("clf", {"rows": [row()]}, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert srv.client.get("/v1/models").status_code == 401
    ok = srv.predict("clf", {"rows": [row()]}, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert srv.client.get("/healthz").status_code == 200 and srv.client.get("/readyz").status_code == 200
    assert srv.client.get("/openapi.json").json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_token_comes_from_the_environment_or_plugins_toml(workspace, monkeypatch):
    from forgeml.serving.config import resolve_token, serving_settings
    from forgeml.workspace import Workspace

    (workspace.root / "plugins.toml").write_text(
        '[serving]\ntoken = { env = "MY_TOKEN" }\n[serving.endpoints.clf]\nmodel = "clf@production"\n'
        '[serving.endpoints.clf.batching]\nmax_batch_size = 8\n')
    ws = Workspace(workspace.root)
    monkeypatch.setenv("MY_TOKEN", "from-toml")
    monkeypatch.delenv("FORGEML_SERVE_TOKEN", raising=False)
    settings = serving_settings(ws)
    assert resolve_token(settings) == "from-toml"
    monkeypatch.setenv("FORGEML_SERVE_TOKEN", "from-env")
    assert resolve_token(settings) == "from-env"
    assert settings.endpoints["clf"].batching.max_batch_size == 8


def test_a_model_error_on_valid_input_is_not_a_crash(workspace, serve):
    from forgeml.registry import promote

    def picky(frame):
        if (frame["x"] < 0).any():
            raise ValueError("x must be non-negative")
        return frame["x"].to_numpy()

    mv = register_function("picky", picky)
    promote("picky", mv.version, "production", reason="test")
    srv = serve([EndpointConfig("picky", "picky@production")])
    r = srv.predict("picky", {"rows": [{"x": -1.0}]})
    assert r.status_code == 422 and "non-negative" in r.json()["error"]
    assert srv.predict("picky", {"rows": [{"x": 2.0}]}).json()["predictions"] == [2.0]


def test_worker_processes_accept_requests_only_once_loaded(workspace):
    """With several workers sharing the port, none answers "still loading" while another is ready."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from forgeml.registry import promote

    mv = register_function("slow", SlowToLoad())
    promote("slow", mv.version, "production", reason="test")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the workers unpickle SlowToLoad, so they must find this folder's helper module
    env = {**os.environ, "FORGEML_HOME": str(workspace.root),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "serve", "slow@production", "--workers", "2",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            try:
                first = httpx.get(base + "/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no worker answered within 60 s"
                time.sleep(0.05)
        assert first.status_code == 200, first.text
        codes = []
        for i in range(30):  # a fresh connection each time, so any worker may take it
            r = httpx.post(base + "/v1/models/slow/predict", json={"rows": [{"x": float(i)}]}, timeout=10)
            codes.append(r.status_code)
            if r.status_code == 200:
                assert r.json()["predictions"] == [2.0 * i]
        assert codes == [200] * 30, codes
    finally:
        proc.terminate()
        proc.wait(timeout=30)
