"""Serving through failures: the fallback chain, feature defaults and circuit breakers, on the real server.

The model faults come from a registered model that raises while a flag file exists; the online-store
faults from a store plugin registered in the test that wraps the real SQLite store and fails or hangs
on demand. Breaker cool-downs run on a manual clock, so no test sleeps through one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from serving_support import ManualClock, register_function

from forgeml import hookimpl
from forgeml.errors import ForgeError
from forgeml.serving import EndpointConfig, ServerOptions, build_app, read_prediction_log
from forgeml.serving.resilience import CircuitBreaker, FallbackConfig


class Breakable:
    """A model that doubles x, and raises while its flag file exists."""

    def __init__(self, flag: str, factor: float = 2.0):
        self.flag = flag
        self.factor = factor

    def __call__(self, frame: pd.DataFrame) -> Any:
        if Path(self.flag).exists():
            raise RuntimeError("model backend is down")
        return frame["x"].to_numpy() * self.factor


def _rows(*xs: float) -> dict[str, Any]:
    return {"rows": [{"x": x} for x in xs]}


@pytest.fixture
def flaky_models(workspace, tmp_path):
    """A primary (x*2) and a backup (x*100), each breakable by touching its flag file."""
    from forgeml.registry import promote

    primary, backup = tmp_path / "primary.down", tmp_path / "backup.down"
    mv = register_function("fn", Breakable(str(primary)))
    promote("fn", mv.version, "production", reason="test")
    mv = register_function("simple", Breakable(str(backup), 100.0))
    promote("simple", mv.version, "production", reason="test")
    return primary, backup


def test_a_failing_model_is_answered_by_the_backup_then_the_constant(flaky_models, serve):
    primary, backup = flaky_models
    clock = ManualClock()
    fallback = FallbackConfig(model="simple@production", constant=-1.0, breaker_failures=2, breaker_cooldown_s=10)
    srv = serve([EndpointConfig("fn", "fn@production", fallback=fallback)], clock=clock)
    ok = srv.predict("fn", _rows(1.0, 2.0)).json()
    assert ok["link"] == "primary" and ok["predictions"] == [2.0, 4.0]

    primary.touch()
    first = srv.predict("fn", _rows(1.0))
    assert first.status_code == 200, first.text
    assert first.json()["link"] == "backup" and first.json()["predictions"] == [100.0]
    assert first.json()["fallback_reason"] == "ModelFailed"
    srv.predict("fn", _rows(1.0))  # the second failure in a row opens the model's breaker
    endpoint = srv.state.endpoints["fn"]
    assert endpoint.model_breaker.state == "open"
    skipped = srv.predict("fn", _rows(3.0)).json()
    assert skipped["link"] == "backup" and skipped["fallback_reason"] == "breaker_open"

    backup.touch()
    last = srv.predict("fn", _rows(1.0, 2.0, 3.0)).json()
    assert last["link"] == "constant" and last["predictions"] == [-1.0, -1.0, -1.0]

    # the fault ends; the breaker lets one probe through after the cool-down and closes on its success
    primary.unlink()
    backup.unlink()
    assert srv.predict("fn", _rows(1.0)).json()["link"] == "backup"  # still open: the primary is not asked
    clock.advance(10)
    back = srv.predict("fn", _rows(1.0)).json()
    assert back["link"] == "primary" and back["predictions"] == [2.0]
    assert endpoint.model_breaker.state == "closed"
    # a wrong request is the caller's error, not hidden behind a fallback
    assert srv.predict("fn", {"rows": [{"y": 1.0}]}).status_code == 422

    metrics = srv.client.get("/metrics").text
    assert 'forgeml_serving_fallbacks_total{link="backup",model="fn",reason="ModelFailed"} 2.0' in metrics
    assert 'forgeml_serving_fallbacks_total{link="backup",model="fn",reason="breaker_open"} 2.0' in metrics
    assert 'forgeml_serving_fallbacks_total{link="constant",model="fn",reason="breaker_open"} 1.0' in metrics
    assert 'forgeml_serving_circuit_state{dependency="model",model="fn"} 0.0' in metrics
    srv.stop()
    frame = read_prediction_log("fn").to_pandas()
    assert frame.groupby("_arm").size().to_dict() == {"primary": 3, "backup": 4, "constant": 3}


def test_without_a_fallback_a_failing_model_is_still_an_error(flaky_models, serve):
    primary, _ = flaky_models
    srv = serve([EndpointConfig("fn", "fn@production")])
    primary.touch()
    r = srv.predict("fn", _rows(1.0))
    assert r.status_code == 500 and "model backend is down" in r.json()["error"]


class FlakyOnlineStore:
    """The real SQLite online store, failing (mode "fail") or hanging (mode "hang") on reads when told."""

    mode = "ok"
    reads = 0

    def __init__(self, inner: Any):
        self.inner = inner

    def _guard(self) -> None:
        FlakyOnlineStore.reads += 1
        if self.mode == "fail":
            raise ConnectionError("online store unreachable")
        if self.mode == "hang":
            time.sleep(1.0)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        """Read, unless broken."""
        self._guard()
        return self.inner.read(*args, **kwargs)

    def read_rows(self, *args: Any, **kwargs: Any) -> Any:
        """Read rows, unless broken."""
        self._guard()
        return self.inner.read_rows(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FlakyStorePlugin:
    """Registers the flaky store as online-store plugin "flaky"."""

    @hookimpl
    def forgeml_register_online_stores(self, register):
        """Offer the flaky store."""
        def build(settings: Any, workspace: Any) -> FlakyOnlineStore:
            from forgeml.config import build_settings

            real = workspace.plugins.provider("online_stores", "sqlite")
            return FlakyOnlineStore(real.build(build_settings(real.settings, {}, "test"), workspace))

        register("flaky", build, description="the SQLite store, broken on demand")


@pytest.fixture
def flaky_workspace(workspace, entity_model, make_plugin_manager):
    """The same workspace opened with [storage.online] plugin = "flaky"."""
    from forgeml.config import read_toml
    from forgeml.workspace import Workspace

    raw = read_toml(workspace.root / "plugins.toml")
    raw["storage"]["online"] = {"plugin": "flaky"}
    ws = Workspace(workspace.root, host=make_plugin_manager(("flaky-store", FlakyStorePlugin())), raw=raw)
    FlakyOnlineStore.mode, FlakyOnlineStore.reads = "ok", 0
    yield ws
    FlakyOnlineStore.mode = "ok"
    ws.close()


def test_a_failing_online_store_is_answered_with_feature_defaults(flaky_workspace):
    from serving_support import start_server

    clock = ManualClock()
    defaults = {"clicks": 0.0, "spend": 1.0, "spend_ratio": 0.0}
    # the deadline leaves a busy machine room for real reads; the hanging store sleeps 1 s
    fallback = FallbackConfig(feature_defaults=defaults, lookup_deadline_ms=600, breaker_failures=2,
                              breaker_cooldown_s=5)
    options = ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2)
    srv = start_server(build_app([EndpointConfig("scorer", "scorer@production", fallback=fallback)], options,
                                 flaky_workspace, clock=clock))
    try:
        srv.wait_ready()
        body = {"entities": [{"user_id": 1, "amount": 4.0}]}
        ok = srv.predict("scorer", body).json()

        assert ok["predictions"] == [2.0 * 10 + 5 + 0.5] and "feature_defaults" not in ok

        FlakyOnlineStore.mode = "fail"
        down = srv.predict("scorer", body)
        assert down.status_code == 200, down.text
        assert down.json()["predictions"] == [1.0 * 10 + 0 + 0.0]
        assert down.json()["feature_defaults"] == ["clicks", "spend", "spend_ratio"]
        srv.predict("scorer", body)  # the second failure opens the store's breaker
        reads = FlakyOnlineStore.reads
        assert srv.predict("scorer", body).json()["feature_defaults"]
        assert FlakyOnlineStore.reads == reads  # open: the store was not called at all
        assert 'forgeml_serving_circuit_state{dependency="online_store",model="scorer"} 2.0' in \
            srv.client.get("/metrics").text

        FlakyOnlineStore.mode = "ok"
        clock.advance(5)
        healed = srv.predict("scorer", body).json()

        assert healed["predictions"] == ok["predictions"] and "feature_defaults" not in healed

        # a hanging store: the lookup deadline gives up and the defaults answer
        FlakyOnlineStore.mode = "hang"
        slow = srv.predict("scorer", body).json()
        assert slow["feature_defaults"] == ["clicks", "spend", "spend_ratio"]
        metrics = srv.client.get("/metrics").text
        assert 'forgeml_serving_feature_defaults_total{model="scorer",reason="timeout"} 1.0' in metrics
        assert 'forgeml_serving_feature_defaults_total{model="scorer",reason="error"} 2.0' in metrics
        FlakyOnlineStore.mode = "ok"
    finally:
        srv.stop()
    frame = read_prediction_log("scorer").to_pandas()
    marked = frame["_feature_defaults"].dropna().tolist()
    assert marked == ["clicks,spend,spend_ratio"] * 4


def test_a_store_failure_without_defaults_is_503_not_a_crash(flaky_workspace):
    from serving_support import start_server

    options = ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2)
    srv = start_server(build_app([EndpointConfig("scorer", "scorer@production")], options, flaky_workspace))
    try:
        srv.wait_ready()
        FlakyOnlineStore.mode = "fail"
        r = srv.predict("scorer", {"entities": [{"user_id": 1, "amount": 4.0}]})
        assert r.status_code == 503 and "no default for clicks" in r.json()["error"]
        assert r.headers["retry-after"]
    finally:
        FlakyOnlineStore.mode = "ok"
        srv.stop()


def test_circuit_breaker_opens_half_opens_and_closes():
    clock = ManualClock()
    changes: list[str] = []
    breaker = CircuitBreaker(3, 2.0, clock, changes.append)
    for _ in range(2):
        breaker.failure()
    breaker.success()  # consecutive, not total: a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert not breaker.allow()
    clock.advance(2)
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again for a full cool-down
    clock.advance(1)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    breaker.success()
    assert breaker.allow()
    assert changes == ["open", "half_open", "open", "half_open", "closed"]


@pytest.mark.parametrize(("table", "message"), [
    ("breaker_failures = 0", "breaker_failures must be at least 1, got 0"),
    ("breaker_cooldown_s = 0", "breaker_cooldown_s must be positive"),
    ('model = "simple"', "simple"),
    ("constnat = 1.0", "constant"),
    ('feature_defaults = { clicks = "zero" }', "expected a number"),
    ('rule = "x +"', r"rule 'x \+' is not an expression"),
    ("breaker_quantile = 0", "breaker_quantile"),
    ("max_queue = -1", "max_queue: -1 is out of range"),
    ("budget_ms = -5", "budget_ms: -5.0 is out of range"),
])
def test_fallback_configuration_mistakes_are_one_line_errors(workspace, table, message):
    from forgeml.serving.config import endpoint_configs, serving_settings
    from forgeml.workspace import Workspace

    (workspace.root / "plugins.toml").write_text(
        f'[serving.endpoints.fn]\nmodel = "fn@production"\n[serving.endpoints.fn.fallback]\n{table}\n')
    with pytest.raises(ForgeError, match=message) as err:
        endpoint_configs([], serving_settings(Workspace(workspace.root)))
    assert "\n" not in str(err.value)


def test_training_statistics_stored_with_the_version_fill_in_for_a_failed_store(flaky_workspace):
    from serving_support import start_server

    # the model was registered with a two-row input example: clicks 1 and 2, spend 1 and 2, ratio 0.5 and 1
    fallback = FallbackConfig(feature_defaults={"clicks": 0.0}, training_defaults=True, breaker_failures=100)
    options = ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2)
    srv = start_server(build_app([EndpointConfig("scorer", "scorer@production", fallback=fallback)], options,
                                 flaky_workspace))
    try:
        srv.wait_ready()
        FlakyOnlineStore.mode = "fail"
        down = srv.predict("scorer", {"entities": [{"user_id": 1, "amount": 4.0}]}).json()
        # spend and the ratio from their training means; clicks from the configured default
        assert down["predictions"] == [1.5 * 10 + 0.0 + 0.75]
        assert down["feature_defaults"] == ["clicks", "spend", "spend_ratio"]
    finally:
        FlakyOnlineStore.mode = "ok"
        srv.stop()
