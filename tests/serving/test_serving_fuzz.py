"""Fuzz the published OpenAPI document with schemathesis: valid and invalid bodies, never a 500."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from forgeml.serving import EndpointConfig, ServerOptions

schemathesis = pytest.importorskip("schemathesis")


def describe(frame: pd.DataFrame):
    return [f"{c}:{k}:{b}" for c, k, b in zip(frame["city"], frame["count"], frame["flag"])]


@pytest.fixture
def fuzz_target(sklearn_model, entity_model, workspace, serve):
    from forgeml.registry import promote, register_model

    example = pd.DataFrame({"city": ["a", "b"], "count": [1, 2], "flag": [True, False]})
    mv = register_model("mixed", describe, flavor="python", input_example=example)
    promote("mixed", mv.version, "production", reason="test")
    srv = serve([EndpointConfig("clf", "clf@production"), EndpointConfig("mixed", "mixed@production"),
                 EndpointConfig("scorer", "scorer@production")],
                ServerOptions(max_body_bytes=64_000, log_predictions=False))
    return srv


def test_published_schema_is_fuzzed_without_server_errors(fuzz_target):
    from schemathesis import GenerationMode

    srv = fuzz_target
    doc = srv.client.get("/openapi.json").json()
    assert set(doc["paths"]) >= {"/v1/models/clf/predict", "/v1/models/mixed/predict", "/v1/models/scorer/predict",
                                 "/readyz"}
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:
        _fuzz(srv.url, operation, GenerationMode.POSITIVE)
        if operation.method.upper() == "POST":  # a GET without parameters has no invalid form
            _fuzz(srv.url, operation, GenerationMode.NEGATIVE)


def _fuzz(url, operation, mode):
    from schemathesis import GenerationMode

    post = operation.method.upper() == "POST"

    @settings(max_examples=15 if post else 2, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(base_url=url)
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if post:
            if mode is GenerationMode.POSITIVE:
                assert response.status_code in (200, 413, 422), (case.body, response.text)
            if response.status_code >= 400:
                assert "error" in response.json()
        operation.validate_response(response)

    check()
