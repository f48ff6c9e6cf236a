"""The [serving] section and the serve command: endpoints from plugins.toml, clear errors, worker specs."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from forgeml.errors import ConfigError, NotFoundError
from forgeml.serving.config import (
    app_args_to_spec,
    endpoint_configs,
    server_options,
    serving_settings,
    spec_to_app_args,
)

TOML = """
[serving]
port = 9001
max_body_bytes = 4096
max_rows = 500

[serving.endpoints.fraud]
model = "fraud@production"
max_rows = 20
shadow = "fraud@challenger"

[serving.endpoints.fraud.batching]
max_batch_size = 16
max_delay_ms = 2.5

[serving.endpoints.churn]
model = "churn@champion"

[serving.endpoints.churn.canary]
model = "churn@candidate"
steps = [0.1, 1.0]
interval_s = 30.0
max_p99_ms = 40.0
"""


def _workspace_with(workspace, text):
    from forgeml.workspace import Workspace

    (workspace.root / "plugins.toml").write_text(text)
    return Workspace(workspace.root)


def test_endpoints_come_from_plugins_toml(workspace):
    ws = _workspace_with(workspace, TOML)
    settings = serving_settings(ws)
    endpoints = {e.name: e for e in endpoint_configs([], settings)}
    assert set(endpoints) == {"fraud", "churn"}
    assert endpoints["fraud"].shadow == "fraud@challenger"
    assert (endpoints["fraud"].batching.max_batch_size, endpoints["fraud"].batching.max_delay_ms) == (16, 2.5)
    churn = endpoints["churn"]
    assert churn.canary_model == "churn@candidate" and churn.canary.steps == [0.1, 1.0]
    assert churn.canary.max_p99_ms == 40.0
    # row limits: the endpoint's own, else [serving].max_rows, for URIs given on the command line too
    assert (endpoints["fraud"].max_rows, churn.max_rows) == (20, 500)
    assert endpoint_configs(["other@1"], settings)[0].max_rows == 500
    # a URI on the command line takes its endpoint's table, and --no-batching overrides it
    [only] = endpoint_configs(["fraud@3"], settings, batching=False)
    assert only.model == "fraud@3" and only.shadow == "fraud@challenger" and not only.batching.enabled
    assert server_options(settings).max_body_bytes == 4096


def test_worker_processes_rebuild_the_same_endpoints(workspace, monkeypatch):
    ws = _workspace_with(workspace, TOML)
    settings = serving_settings(ws)
    endpoints = endpoint_configs([], settings)
    options = server_options(settings)
    options.token = "tok"
    spec = orjson.loads(orjson.dumps(app_args_to_spec(endpoints, options)))
    assert "tok" not in orjson.dumps(spec).decode()  # the token travels in the environment only
    monkeypatch.setenv("FORGEML_SERVE_TOKEN", "tok")
    again, opts = spec_to_app_args(spec)
    assert again == endpoints and opts.token == "tok" and opts.max_body_bytes == 4096


def test_configuration_mistakes_are_clear(workspace):
    with pytest.raises(ConfigError, match="did you mean 'max_batch_size'"):
        _workspace_with(workspace, "[serving.endpoints.a]\nmodel = \"a@1\"\n[serving.endpoints.a.batching]\n"
                                   "max_batch = 3\n")
    ws = _workspace_with(workspace, "[serving.endpoints.a]\nshadow = \"a@2\"\n")
    with pytest.raises(ConfigError, match="'model' is required"):
        endpoint_configs([], serving_settings(ws))
    from forgeml.serving import build_app

    with pytest.raises(ConfigError, match="nothing to serve"):
        build_app([], workspace=ws)


def test_serve_refuses_a_model_that_does_not_exist(sklearn_model, workspace):
    from forgeml.cli import cli
    from forgeml.serving.server import run_server

    with pytest.raises(NotFoundError, match="did you mean 'clf'"):
        run_server(["clx@production"], workspace=workspace)
    with pytest.raises(NotFoundError, match="no version in ARCHIVED"):
        run_server(["clf@archived"], workspace=workspace)
    res = CliRunner().invoke(cli, ["serve", "--help"])
    assert res.exit_code == 0 and "--no-batching" in res.output


def test_recommendation_compute_settings_are_checked(workspace):
    """recommend_concurrency below 1, not a number, or above 1 on the event loop: one clear line each."""
    for text, needle in (("recommend_concurrency = 0", "recommend_concurrency"),
                         ('recommend_concurrency = "two"', "recommend_concurrency"),
                         ("recommend_on_event_loop = 3", "recommend_on_event_loop")):
        with pytest.raises(ConfigError, match=needle) as caught:
            serving_settings(_workspace_with(workspace, f"[serving]\n{text}\n"))
        assert "\n" not in str(caught.value)
    ws = _workspace_with(workspace, "[serving]\nrecommend_concurrency = 2\nrecommend_on_event_loop = true\n")
    with pytest.raises(ConfigError, match="one recommendation at a time") as caught:
        server_options(serving_settings(ws))
    assert "\n" not in str(caught.value)
    options = server_options(serving_settings(_workspace_with(workspace, "[serving]\nrecommend_concurrency = 3\n")))
    assert (options.recommend_concurrency, options.recommend_on_event_loop) == (3, None)
    _, again = spec_to_app_args(orjson.loads(orjson.dumps(app_args_to_spec([], options))))
    assert again.recommend_concurrency == 3  # worker processes compute as many at once
