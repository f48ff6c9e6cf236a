"""Family 8: settings ranges are checked in plugins.toml, and secrets come from the environment and stay there."""

from __future__ import annotations

import dataclasses
import json
import threading
import typing
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.config import build_settings, implied_range
from forgeml.errors import ConfigError, PluginError


def _numeric_fields(workspace) -> list[tuple[str, type, str, type, tuple]]:
    """Every int/float setting of every section core and the built-in plugins declare, with its range."""
    found = []
    for section, (cls, _) in sorted(workspace.plugins.settings_sections().items()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if tp in (int, float):
                rng = (f.metadata.get("range") if f.metadata else None) or implied_range(f.name)
                found.append((section, cls, f.name, tp, rng))
    return found


def test_ports_and_durations_have_ranges(workspace):
    fields = {(s, n): r for s, _, n, _, r in _numeric_fields(workspace)}
    assert fields[("serving", "port")] == (1, 65535)
    assert fields[("tracking", "flush_interval_s")] == (0, None)
    assert sum(r != (None, None) for r in fields.values()) >= 15


@settings(max_examples=80, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_numeric_setting_refuses_what_lies_outside_its_range(workspace, data):
    section, cls, name, tp, (low, high) = data.draw(st.sampled_from(_numeric_fields(workspace)))
    if tp is int:
        value = data.draw(st.integers(-(2**70), 2**70))
    else:
        value = data.draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)))
    outside = value != value or (low is not None and value < low) or (high is not None and value > high)
    if outside:
        with pytest.raises(ConfigError, match=rf"\[{section}\]\.{name}: .*(out of range|nan)"):
            build_settings(cls, {name: value}, f"[{section}]")
    else:
        try:
            built = build_settings(cls, {name: value}, f"[{section}]")
        except ConfigError as e:  # a cross-field check of the section may still refuse it, in one line
            assert "\n" not in str(e)
        else:
            assert getattr(built, name) == value


def test_an_out_of_range_port_is_a_config_error_not_a_crash(configure):
    with pytest.raises(ConfigError, match=r"\[serving\]\.port: 70000 is out of range; it must be from 1 to 65535"):
        configure("[serving]\nport = 70000\n").config.section("serving")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)})
        self.send_response(500 if "fail" in self.path else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_webhook_url_and_token_come_from_the_environment_and_are_never_repeated(workspace, receiver, monkeypatch):
    """The URL's path is its credential (as a chat webhook's is): errors name only its scheme and host."""
    from forgeml.config import Secret
    from forgeml.plugins.notifiers import WebhookNotifier, WebhookSettings

    monkeypatch.setenv("HOOK_URL", f"{receiver}/services/T000/fail/s3cr3tpath")
    monkeypatch.setenv("HOOK_TOKEN", "t0ken-value")
    parsed = build_settings(WebhookSettings, {"url": {"env": "HOOK_URL"}, "token": {"env": "HOOK_TOKEN"}},
                            "[monitoring.notifiers.webhook]")
    assert isinstance(parsed.url, Secret) and "s3cr3t" not in repr(parsed)
    notifier = WebhookNotifier(parsed, workspace)
    with pytest.raises(PluginError) as failed:
        notifier.notify({"rule": "drift", "message": "psi 0.4"})
    assert "s3cr3tpath" not in str(failed.value) and "t0ken" not in str(failed.value)
    assert "http://127.0.0.1/..." in str(failed.value)
    assert _Recorder.seen[0]["auth"] == "Bearer t0ken-value" and _Recorder.seen[0]["path"].endswith("s3cr3tpath")
    with pytest.raises(ConfigError, match="HOOK_MISSING is not set"):
        WebhookNotifier(build_settings(WebhookSettings, {"url": {"env": "HOOK_MISSING"}}, "[w]"), workspace)
