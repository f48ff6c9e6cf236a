"""Triggers: cron under a controlled clock, new data through the plugin hooks, retraining strategies, bad config."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from forgeml.errors import ForgeError, ValidationError
from forgeml.pipelines import CronTriggers, list_runs, triggers
from forgeml.pipelines.triggers import trigger_events

PIPES = textwrap.dedent('''
    from forgeml import pipeline, step

    @step(cache=False)
    def refresh(tag):
        with open("starts.txt", "a") as f:
            f.write(tag + "\\n")
        return tag

    @pipeline
    def nightly(tag: str = "cron"):
        refresh(tag)

    @pipeline
    def retrain(tag: str = "retrain"):
        refresh(tag)
''')


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _ws(configure, body: str):
    ws = configure('[pipelines]\nmodules = ["pipes.py"]\n' + body)
    (ws.root / "pipes.py").write_text(PIPES)
    return ws


def test_cron_trigger_fires_at_the_scheduled_times_under_a_controlled_clock(configure):
    ws = _ws(configure, '[[pipelines.triggers]]\npipeline = "nightly"\ncron = "*/15 * * * *"\n')
    clock = Clock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    cron = CronTriggers(ws, clock)
    fired_at = []
    for minute in [0, 5, 14, 15, 16, 29, 30, 31, 44, 45]:
        clock.now = datetime(2026, 11, 25, 10, minute, tzinfo=UTC)
        if cron.tick():
            fired_at.append(minute)
    assert fired_at == [0, 15, 30, 45]
    # asleep for an hour: 11:00, 11:15 and 11:30 were missed; they coalesce into one start, and the cause says so
    clock.now = datetime(2026, 11, 25, 11, 50, tzinfo=UTC)
    [start] = cron.tick()
    assert start["status"] == "succeeded"
    assert start["cause"] == "cron:*/15 * * * * at 2026-11-25T11:45:00+00:00 (3 missed)"
    assert cron.tick() == []
    runs = list_runs("nightly", workspace=ws)
    assert len(runs) == 5 and all(r["cause"].startswith("cron:*/15") for r in runs)
    assert (ws.root / "starts.txt").read_text().count("cron") == 5
    assert cron.next_times()["nightly:cron:*/15 * * * *"] == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_second_watcher_does_not_fire_the_same_time_twice(configure):
    ws = _ws(configure, '[[pipelines.triggers]]\npipeline = "nightly"\ncron = "0 3 * * *"\n')
    clock = Clock(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    a, b = CronTriggers(ws, clock), CronTriggers(ws, clock)
    assert a.tick() == [] and b.tick() == []
    clock.now = datetime(2026, 11, 25, 3, 0, 30, tzinfo=UTC)
    assert len(a.tick()) == 1 and b.tick() == []


def test_new_data_and_materializations_start_pipelines_through_the_plugin_hooks(configure):
    ws = _ws(configure, textwrap.dedent('''
        [[pipelines.triggers]]
        pipeline = "nightly"
        on_dataset = "clicks"
        params = { tag = "new-clicks" }

        [pipelines.retraining.ranker]
        strategy = "continuous"
        pipeline = "retrain"
        feature_views = ["user_stats"]
    '''))
    ws.plugins.on_dataset_version_registered(dataset_version=SimpleNamespace(name="clicks", version=4), workspace=ws)
    ws.plugins.on_dataset_version_registered(dataset_version=SimpleNamespace(name="other", version=1), workspace=ws)
    ws.plugins.on_features_materialized(view="user_stats", start="2026-11-24", end="2026-11-25", rows=10, workspace=ws)
    ws.plugins.on_features_materialized(view="user_stats", start="2026-11-25", end="2026-11-26", rows=0, workspace=ws)
    runs = sorted(list_runs(workspace=ws), key=lambda r: r["pipeline"])
    assert [(r["pipeline"], r["cause"]) for r in runs] == [
        ("nightly", "dataset:clicks@v4"),
        ("retrain", "features:user_stats[2026-11-24, 2026-11-25)"),
    ]
    assert (ws.root / "starts.txt").read_text().split() == ["new-clicks", "retrain"]
    events = trigger_events(ws)
    assert {e["trigger"] for e in events} == {"nightly:dataset:clicks", "retrain:ranker:features:user_stats"}


def test_a_real_dataset_registration_triggers_its_pipeline(configure):
    import pyarrow as pa

    from forgeml.datasets import register_dataset

    ws = _ws(configure, '[[pipelines.triggers]]\npipeline = "nightly"\non_dataset = "*"\n')
    register_dataset("events", pa.table({"x": [1, 2, 3]}), workspace=ws)
    assert [r["cause"] for r in list_runs(workspace=ws)] == ["dataset:events@v1"]


def test_retraining_strategies_become_triggers(configure):
    ws = _ws(configure, textwrap.dedent('''
        [pipelines.retraining.churn]
        strategy = "scheduled"
        pipeline = "retrain"
        cron = "0 4 * * 1"

        [pipelines.retraining.fraud]
        strategy = "triggered"
        pipeline = "retrain"
    '''))
    found = {t.name: t for t in triggers(ws)}
    assert found["retrain:churn:cron"].kind == "cron" and found["retrain:churn:cron"].condition == "0 4 * * 1"
    assert found["retrain:fraud:alert"].kind == "alert" and found["retrain:fraud:alert"].origin == "retraining:fraud"
    # a triggered strategy retrains on any alert about its model
    from forgeml.pipelines.triggers import on_alert

    alert = SimpleNamespace(id=7, rule="drift", subject="fraud", pipeline=None)
    [start] = on_alert(ws, alert)
    assert start["pipeline"] == "retrain" and start["cause"] == "alert:7 rule drift"


@pytest.mark.parametrize("body, message", [
    ('[[pipelines.triggers]]\npipeline = "nightly"\ncron = "every day"\n', "not a valid cron expression"),
    ('[[pipelines.triggers]]\npipeline = "nightly"\ncron = "0 3 * * *"\non_dataset = "x"\n', "exactly one of"),
    ('[pipelines.retraining.m]\nstrategy = "sometimes"\npipeline = "retrain"\n', "strategy must be one of"),
    ('[pipelines.retraining.m]\nstrategy = "scheduled"\npipeline = "retrain"\n', "needs cron"),
    ('[pipelines.retraining.m]\nstrategy = "continuous"\npipeline = "retrain"\n', "needs datasets or feature_views"),
    ('[pipelines]\ncahce = true\n', "unknown key 'cahce'"),
])
def test_bad_trigger_config_is_reported(configure, body, message):
    with pytest.raises(ForgeError, match=message):
        ws = configure(body)
        triggers(ws)


def test_a_trigger_naming_an_unknown_pipeline_is_recorded_not_raised(configure):
    ws = _ws(configure, '[[pipelines.triggers]]\npipeline = "nightlly"\non_dataset = "d"\n')
    ws.plugins.on_dataset_version_registered(dataset_version=SimpleNamespace(name="d", version=1), workspace=ws)
    [event] = trigger_events(ws)
    assert event["status"] == "error" and "did you mean 'nightly'" in event["error"]


def test_cron_trigger_cli_lists_next_times(configure):
    import json

    from click.testing import CliRunner

    from forgeml.cli import cli

    _ws(configure, '[[pipelines.triggers]]\npipeline = "nightly"\ncron = "0 3 * * *"\n')
    result = CliRunner().invoke(cli, ["pipeline", "triggers", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["kind"] == "cron" and row["next"].endswith("T03:00+00:00")


def test_negative_retries_are_rejected():
    from forgeml.pipelines.dsl import step

    with pytest.raises(ValidationError, match="must not be negative"):
        step(retries=-1)
