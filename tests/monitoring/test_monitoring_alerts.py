"""Alert rules from plugins.toml: firing, notifiers (real webhook server, real shell command), pipelines,
de-duplication, acknowledgement from the CLI, resolution, and configuration errors."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner
from monitoring_helpers import log_table, write_log

from forgeml.errors import ConfigError, ForgeError, ValidationError
from forgeml.monitoring import acknowledge, evaluate, get_alert, list_alerts

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

RETRAIN = '''
from forgeml import pipeline, step

@step
def retrain(reason):
    with open("retrained.txt", "a") as f:
        f.write(reason + "\\n")
    return reason

@pipeline
def retrain_model(reason: str = "drift"):
    retrain(reason)
'''


@pytest.fixture
def webhook():
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str, extra_rule: str = "", notifiers: str = "") -> str:
    return f"""
[pipelines]
modules = ["retrain.py"]

[monitoring.notifiers.hook]
plugin = "webhook"
url = "{url}"

[monitoring.notifiers.script]
plugin = "shell"
command = "sh -c 'cat > alert.json; echo $FORGEML_ALERT_RULE > rule.txt'"
{notifiers}

[[monitoring.rules]]
name = "errors-high"
metric = "error_rate"
threshold = 0.05
model = "m"
window = "1h"
severity = "critical"
pipeline = "retrain_model"
{extra_rule}
"""


def _log_errors(ws, error_every: int, at: datetime) -> None:
    write_log(ws, "m", log_table(at - timedelta(minutes=30), 100, seed=at.minute, error_every=error_every,
                                 spacing_s=10))


def test_a_firing_rule_notifies_once_runs_its_pipeline_and_can_be_acknowledged(configure, webhook):
    url, received = webhook
    ws = configure(_config(url))
    (ws.root / "retrain.py").write_text(RETRAIN)
    _log_errors(ws, error_every=5, at=NOW)  # 20% errors

    [outcome] = evaluate(ws, now=NOW)
    assert outcome.outcome == "fired" and outcome.value == pytest.approx(0.2)
    alert = outcome.alert
    assert alert.status == "open" and alert.severity == "critical"
    assert [d["notifier"] for d in alert.deliveries if d["ok"]] == ["hook", "script"]
    # the webhook server got the alert JSON; the shell command got it on stdin and in its environment
    assert len(received) == 1 and received[0]["rule"] == "errors-high" and received[0]["id"] == alert.id
    assert json.loads((ws.root / "alert.json").read_text())["subject"] == "m"
    assert (ws.root / "rule.txt").read_text().strip() == "errors-high"
    # the rule names a pipeline: it ran, recorded with the alert as its cause
    from forgeml.pipelines import list_runs

    [run] = list_runs(workspace=ws)
    assert run["pipeline"] == "retrain_model" and run["status"] == "SUCCEEDED"
    assert run["cause"] == f"alert:{alert.id} rule errors-high"
    assert (ws.root / "retrained.txt").read_text() == "drift\n"

    # still firing: the same alert, counted again, no new notification or pipeline run
    [again] = evaluate(ws, now=NOW + timedelta(minutes=1))
    assert again.outcome == "ongoing" and again.alert.id == alert.id and again.alert.occurrences == 2
    assert len(received) == 1 and len(list_runs(workspace=ws)) == 1

    # acknowledged from the CLI
    from forgeml.cli import cli

    result = CliRunner().invoke(cli, ["monitor", "alerts", "ack", str(alert.id), "--by", "oncall"])
    assert result.exit_code == 0, result.output
    assert get_alert(alert.id, ws).status == "acknowledged"
    listed = CliRunner().invoke(cli, ["monitor", "alerts", "ls", "--json"])
    assert json.loads(listed.output)[0]["acknowledged_by"] == "oncall"
    assert evaluate(ws, now=NOW + timedelta(minutes=2))[0].outcome == "ongoing"

    # the condition clears: resolved; when it comes back, a new alert fires and notifies
    later = NOW + timedelta(hours=3)
    _log_errors(ws, error_every=0, at=later)
    assert evaluate(ws, now=later)[0].outcome == "resolved"
    assert list_alerts(workspace=ws) == []
    evenlater = later + timedelta(hours=3)
    _log_errors(ws, error_every=4, at=evenlater)
    fresh = evaluate(ws, now=evenlater)[0]
    assert fresh.outcome == "fired" and fresh.alert.id != alert.id
    assert len(received) == 2


def test_a_failing_notifier_is_recorded_and_the_others_still_deliver(configure, webhook):
    url, received = webhook
    broken = '\n[monitoring.notifiers.dead]\nplugin = "webhook"\nurl = "http://127.0.0.1:9/nothing"\ntimeout_s = 2.0\n'
    ws = configure(_config(url, notifiers=broken))
    (ws.root / "retrain.py").write_text(RETRAIN)
    _log_errors(ws, error_every=5, at=NOW)
    alert = evaluate(ws, now=NOW)[0].alert
    by_name = {d["notifier"]: d for d in alert.deliveries}
    assert by_name["hook"]["ok"] and by_name["script"]["ok"]
    assert not by_name["dead"]["ok"] and "cannot reach" in by_name["dead"]["error"]
    assert len(received) == 1
    assert get_alert(alert.id, ws).deliveries == alert.deliveries  # stored with the alert


def test_monitor_run_cli_reports_rules_and_errors(configure, webhook):
    url, _ = webhook
    ws = configure(_config(url, extra_rule='\n[[monitoring.rules]]\nname = "no-log"\nmetric = "latency_p99"\n'
                                           'threshold = 100.0\nmodel = "ghost"\n'))
    (ws.root / "retrain.py").write_text(RETRAIN)
    _log_errors(ws, error_every=0, at=NOW)
    from forgeml.cli import cli

    result = CliRunner().invoke(cli, ["monitor", "run", "--at", NOW.isoformat(), "--json"])
    rows = {r["rule"]: r for r in json.loads(result.output)}
    assert rows["errors-high"]["outcome"] == "ok" and rows["errors-high"]["value"] == 0.0
    assert rows["no-log"]["outcome"] == "no data"


def test_acknowledging_unknown_or_resolved_alerts_is_an_error(workspace):
    from forgeml.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no alert with id 99"):
        acknowledge(99, workspace=workspace)
    with pytest.raises(ValidationError, match="status must be one of"):
        list_alerts(status="opne", workspace=workspace)


@pytest.mark.parametrize("rule, message", [
    ('metric = "error_rat"\nthreshold = 1.0\nmodel = "m"', "did you mean 'error_rate'"),
    ('metric = "error_rate"\nthreshold = 1.0\nmodel = "m"\nop = "=>"', "op must be one of"),
    ('metric = "error_rate"\nthreshold = 1.0\nmodel = "m"\nwindow = "soon"', "window 'soon'"),
    ('metric = "error_rate"\nthreshold = 1.0\nmodel = "m"\nseverity = "urgent"', "severity must be one of"),
    ('metric = "error_rate"\nthreshold = 1.0\nmodel = "m"\nnotifiers = ["pager"]', "unknown notifier 'pager'"),
    ('metric = "error_rate"\nmodel = "m"', "missing required key 'threshold'"),
    ('metric = "error_rate"\nthreshold = "high"\nmodel = "m"', "expected a number"),
])
def test_bad_rules_are_reported_with_the_fix(configure, rule, message):
    with pytest.raises(ForgeError, match=message):
        ws = configure(f'[[monitoring.rules]]\nname = "r"\n{rule}\n')
        evaluate(ws, now=NOW)


def test_bad_notifier_config_is_reported(configure):
    """An unknown notifier fails when the workspace opens; a bad setting value when the notifier is built."""
    from forgeml.monitoring.alerts import notifiers

    with pytest.raises(ConfigError, match=r"\[monitoring.notifiers.x\].*did you mean 'webhook'"):
        configure('[monitoring.notifiers.x]\nplugin = "webhok"\n')
    ws = configure('[monitoring.notifiers.x]\nplugin = "webhook"\nurl = "ftp://x"\n')
    with pytest.raises(ConfigError, match="must start with http"):
        notifiers(ws)


def test_desktop_notifier_reports_cleanly_without_a_desktop(configure, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    ws = configure('[monitoring.notifiers.desk]\nplugin = "desktop"\n')
    from forgeml.errors import PluginError
    from forgeml.monitoring.alerts import notifiers

    with pytest.raises(PluginError, match="desktop notifier"):
        notifiers(ws)["desk"].notify({"rule": "r", "message": "m", "severity": "info"})


def test_a_drift_rule_against_the_training_dataset_triggers_retraining(configure):
    import numpy as np
    import pyarrow as pa

    from forgeml.datasets import register_dataset
    from forgeml.pipelines import list_runs

    ws = configure("""
[pipelines]
modules = ["retrain.py"]

[monitoring.notifiers.file]
plugin = "log"

[[monitoring.rules]]
name = "features-drift"
metric = "drift_share"
threshold = 0.5
op = ">="
model = "m"
window = "1h"
reference = "train@v1"
pipeline = "retrain_model"
""")
    (ws.root / "retrain.py").write_text(RETRAIN)
    register_dataset("train", pa.table({"x": np.random.default_rng(0).normal(0, 1, 3_000)}), workspace=ws)
    write_log(ws, "m", log_table(NOW - timedelta(minutes=50), 600, seed=1, spacing_s=5))
    assert evaluate(ws, now=NOW)[0].outcome == "ok"
    later = NOW + timedelta(hours=2)
    write_log(ws, "m", log_table(later - timedelta(minutes=50), 600, seed=2, spacing_s=5, feature_shift=1.0))
    [outcome] = evaluate(ws, now=later)
    assert outcome.outcome == "fired" and outcome.value == 1.0
    assert outcome.alert.details["drifted_columns"] == ["x"]
    assert [r["cause"] for r in list_runs(workspace=ws)] == [f"alert:{outcome.alert.id} rule features-drift"]
    logged = (ws.root / ".forgeml" / "monitoring" / "alerts.log").read_text().splitlines()
    assert json.loads(logged[0])["rule"] == "features-drift"


def test_drift_cli_compares_files(workspace, tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.cli import cli

    rng = np.random.default_rng(4)
    pq.write_table(pa.table({"a": rng.normal(0, 1, 4000), "b": rng.normal(0, 1, 4000)}), tmp_path / "ref.parquet")
    pq.write_table(pa.table({"a": rng.normal(0, 1, 4000), "b": rng.normal(2, 1, 4000)}), tmp_path / "cur.parquet")
    result = CliRunner().invoke(cli, ["monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"),
                                      "--tests", "ks,psi", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["drifted_columns"] == ["b"]
    assert {t["test"] for t in report["columns"][0]["tests"]} == {"ks", "psi"}
    table = CliRunner().invoke(cli, ["monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet")])
    assert "1 of 2 columns drifted" in table.output


def test_score_shift_and_late_label_accuracy_rules_fire_the_alert_hook_after_storing(configure):
    import pyarrow as pa

    from forgeml import hookimpl
    from forgeml.monitoring import log_labels

    ws = configure("""
[monitoring.notifiers.file]
plugin = "log"

[[monitoring.rules]]
name = "scores-moved"
metric = "score_shift"
threshold = 2.0
model = "m"
window = "1h"

[[monitoring.rules]]
name = "accuracy-low"
metric = "accuracy"
threshold = 0.9
op = "<"
model = "m"
window = "1h"
""")
    seen = []

    class Listener:
        """A throwaway plugin: records each fired alert as the store has it at hook time."""

        @hookimpl
        def forgeml_on_alert_fired(self, alert, workspace):
            seen.append((alert.rule, get_alert(alert.id, workspace).status))

    listener = Listener()
    ws.plugins.pm.register(listener, name="listener")
    try:
        write_log(ws, "m", log_table(NOW - timedelta(minutes=110), 300, seed=1, score_mean=0.5, spacing_s=10))
        current = log_table(NOW - timedelta(minutes=55), 300, seed=2, score_mean=0.8, spacing_s=10)
        write_log(ws, "m", current)
        ids = current.column("_request_id").to_pylist()[:100]
        log_labels("m", pa.table({"_request_id": ids, "label": [1] * 50 + [0] * 50}), workspace=ws)
        outcomes = {o.rule: o for o in evaluate(ws, now=NOW)}
    finally:
        ws.plugins.pm.unregister(listener)
    assert outcomes["scores-moved"].outcome == "fired" and outcomes["scores-moved"].value == pytest.approx(3.0, abs=0.3)
    # scores near 0.8 predict class 1: right for the 50 positives, wrong for the 50 negatives
    assert outcomes["accuracy-low"].outcome == "fired" and outcomes["accuracy-low"].value == pytest.approx(0.5)
    assert sorted(seen) == [("accuracy-low", "open"), ("scores-moved", "open")]
