"""Late outcomes joined to logged predictions by request id, label windows, and an experiment's life cycle."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import forgeml
from forgeml.errors import ConflictError, NotFoundError, ValidationError
from forgeml.experiments import Guardrails, MetricSpec, import_outcomes, read_outcomes, service
from forgeml.serving.arms import HOLDOUT, Allocator, ArmsConfig, read_layout, read_shares
from forgeml.serving.predlog import PredictionLogger, log_root

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DAY = 86_400.0


def _serve(workspace, experiment: str, requests: int, start: dt.datetime | None, conversion: dict[str, float],
           seed: int = 0, holdout: float = 0.0, latency: dict[str, float] | None = None,
           spacing_s: float = 10.0) -> list[tuple[str, str, float]]:
    """Log `requests` predictions through the real prediction logger, each assigned by the real allocator;
    return (request id, arm, time) and record a conversion outcome for the converting ones."""
    rng = np.random.default_rng(seed)
    if start is None:  # traffic starts just after the experiment does (its log is read from its start on)
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    alloc = Allocator(experiment, ArmsConfig(["control", "candidate"], holdout=holdout))
    logger = PredictionLogger(log_root(workspace))
    done, outcomes = [], []
    for i in range(requests):
        rid = f"{experiment}-{seed}-{i}"
        arm, propensity = alloc.assign(f"user-{seed}-{i}")
        ts = start + dt.timedelta(seconds=i * spacing_s)
        lat = (latency or {}).get(arm, 5.0)
        logger.log("fraud", 1, arm, rid, ts, lat, {"x": [float(i)], "_experiment": [experiment],
                                                    "_propensity": [propensity]}, [0.7], 1)
        done.append((rid, arm, ts.timestamp()))
        if rng.random() < conversion[arm]:
            outcomes.append({"request_id": rid, "name": "purchase", "value": 1.0,
                             "time": ts + dt.timedelta(hours=float(rng.uniform(0, 20)))})
    logger.close()
    forgeml.log_outcomes(outcomes)
    return done


class TestOutcomes:
    def test_log_outcome_and_bulk_import_are_joined_by_request_id(self, workspace, tmp_path):
        forgeml.log_outcome("r1", "label", 1, time=T0)
        forgeml.log_outcome("r2", "purchase", 19.5, time=(T0 + dt.timedelta(hours=1)).isoformat())
        csv = tmp_path / "late.csv"
        pd.DataFrame({"request_id": ["00017", "r3"], "value": [0, 1], "time": ["2026-12-02T00:00:00Z"] * 2}).to_csv(
            csv, index=False)
        assert import_outcomes(csv, name="label") == 2
        got = read_outcomes(["label"]).sort_values("request_id")
        assert got["request_id"].tolist() == ["00017", "r1", "r3"]  # ids that look numeric stay text
        assert got["value"].tolist() == [0.0, 1.0, 1.0]
        purchase = read_outcomes(["purchase"])
        assert purchase["value"].tolist() == [19.5] and purchase["at"].iloc[0] == T0.timestamp() + 3600

    @pytest.mark.parametrize("args, message", [
        (("", "label", 1.0), "request_id"),
        (("r1", "no spaces allowed", 1.0), "outcome name"),
        (("r1", "label", float("nan")), "finite"),
        (("r1", "label", "yes"), "finite"),
        (("r1", "label", 1.0, "yesterday"), "ISO 8601"),
    ])
    def test_bad_outcomes_are_one_line_errors(self, workspace, args, message):
        with pytest.raises(ValidationError, match=message):
            forgeml.log_outcome(*args)
        assert read_outcomes(["label"]).empty

    def test_bad_import_files_name_the_problem_and_store_nothing(self, workspace, tmp_path):
        no_id = tmp_path / "a.csv"
        no_id.write_text("id,value\n1,2\n")
        with pytest.raises(ValidationError, match="request_id column"):
            import_outcomes(no_id, name="label")
        bad_row = tmp_path / "b.csv"
        bad_row.write_text("request_id,name,value\nr1,label,1\nr2,label,inf\n")
        with pytest.raises(ValidationError, match="row 3"):
            import_outcomes(bad_row)
        junk = tmp_path / "c.parquet"
        junk.write_bytes(b"PAR1 not really")
        with pytest.raises(ValidationError, match="cannot read"):
            import_outcomes(junk, name="label")
        assert read_outcomes(["label"]).empty


class TestExperimentLifeCycle:
    def test_only_matured_predictions_count_and_late_outcomes_are_ignored(self, workspace):
        service.start_experiment("win", "fraud", {"control": "", "candidate": ""}, window="1d",
                                 metric=MetricSpec("proportion", "purchase"))
        done = _serve(workspace, "win", 200, None, {"control": 0.5, "candidate": 0.5})
        rid, arm, ts = done[0]
        forgeml.log_outcome(rid, "purchase", 1.0, time=ts + 2 * DAY)  # after the window: not a conversion
        last_ts = done[-1][2]
        early = service.analyze("win", now=done[100][2] + DAY)  # half the requests have matured
        assert early.matured == 101 and early.pending == 99
        report = service.analyze("win", now=last_ts + DAY + 1)
        assert report.matured == 200 and report.pending == 0
        frame = read_outcomes(["purchase"])
        in_window = frame[frame["at"] <= frame["request_id"].map({r: t for r, _, t in done}) + DAY]
        assert sum(v["matured"] * v["metric"] for v in report.arms.values()) == pytest.approx(
            in_window["request_id"].nunique())

    def test_a_winner_is_found_and_promoted_through_the_registry(self, workspace):
        from sklearn.linear_model import LogisticRegression

        from forgeml.registry import get_model_version, promote, register_model

        x = pd.DataFrame({"x": np.arange(20.0)})
        y = (x.x > 10).astype(int)
        for _ in range(2):
            register_model("fraud", LogisticRegression().fit(x, y), input_example=x.head(2))
        promote("fraud", 1, "PRODUCTION")
        service.start_experiment("lift", "fraud", {"control": "fraud@production", "candidate": "fraud@2"},
                                 holdout=0.1, window="1d", metric=MetricSpec("proportion", "purchase"))
        with pytest.raises(ConflictError, match="runs experiment 'lift'"):
            service.start_experiment("again", "fraud", {"control": "fraud@production"})
        done = _serve(workspace, "lift", 3000, None, {"control": 0.10, "candidate": 0.16, HOLDOUT: 0.05},
                      holdout=0.1)
        now = done[-1][2] + DAY + 1
        out = service.status("lift", now=now)
        arms = out["report"]["arms"]
        assert arms[HOLDOUT]["requests"] == pytest.approx(300, abs=60)
        by_arm = {c["treatment"]["arm"]: c for c in out["report"]["comparisons"]}
        assert by_arm["candidate"]["sequential_p"] < 0.05 and by_arm["candidate"]["difference"] > 0
        assert by_arm[HOLDOUT]["difference"] < 0  # the model's value over no model at all
        stopped = service.stop("lift", now=now)
        assert stopped["decision"]["action"] == "promote" and stopped["decision"]["winner"] == "candidate"
        assert get_model_version("fraud", "production").version == 2
        assert read_layout(workspace.dot, "fraud")["status"] == "stopped"  # serving routes as before it
        assert service.stop("lift")["decision"]["action"] == "promote"  # stopping twice changes nothing

    def test_a_guardrail_breach_stops_the_experiment_and_rolls_back(self, workspace):
        service.start_experiment("slow", "fraud", {"control": "", "candidate": ""},
                                 guardrails=Guardrails(max_p99_ms=100.0, min_requests=50))
        done = _serve(workspace, "slow", 400, None, {"control": 0.1, "candidate": 0.1},
                      latency={"control": 5.0, "candidate": 400.0})
        out = service.status("slow", now=done[-1][2] + 60)
        assert out["decision"]["action"] == "rollback" and "p99 latency" in out["decision"]["reason"]
        assert service.schema.get_experiment(workspace, "slow")["status"] == "stopped"

    def test_bandit_shares_follow_the_outcomes(self, workspace):
        service.start_experiment("bandit", "fraud", {"control": "", "candidate": ""}, policy="thompson",
                                 window="1h", metric=MetricSpec("proportion", "purchase"))
        assert read_shares(workspace.dot, "fraud", "bandit", ["control", "candidate"]) == pytest.approx([0.5, 0.5],
                                                                                                        abs=0.02)
        done = _serve(workspace, "bandit", 1500, None, {"control": 0.05, "candidate": 0.30})
        service.analyze("bandit", now=done[-1][2] + DAY)
        shares = read_shares(workspace.dot, "fraud", "bandit", ["control", "candidate"])
        assert shares[1] > 0.9

    @pytest.mark.parametrize("kwargs, error, message", [
        ({"arms": {}}, ValidationError, "needs arms"),
        ({"arms": {"x": "fraud"}}, ValidationError, "fraud@production"),
        ({"arms": {"x": ""}, "control": "y"}, ValidationError, "control arm"),
        ({"arms": {"x": ""}, "window": "soon"}, ValidationError, "window"),
        ({"arms": {"x": "", "y": ""}, "metric": MetricSpec("ratio", "clicks")}, ValidationError, "denominator"),
        ({"arms": {"../x": ""}}, ValidationError, "arm name"),
        ({"arms": {"primary": "", "y": ""}}, ValidationError, "taken by the endpoint"),
    ])
    def test_bad_experiments_are_one_line_errors(self, workspace, kwargs, error, message):
        with pytest.raises(error, match=message):
            service.start_experiment("bad", "fraud", **kwargs)
        with pytest.raises(NotFoundError, match="no experiment 'bad'"):
            service.status("bad")


class TestFeedbackLoop:
    def test_labels_dominated_by_the_models_own_decisions_fire_an_alert(self, workspace):
        from forgeml.experiments.feedback_loop import label_provenance
        from forgeml.monitoring import list_alerts

        done = _serve(workspace, "loop", 1000, None, {"control": 0.1, "candidate": 0.1, HOLDOUT: 0.1}, holdout=0.1)
        every = pd.DataFrame({"_request_id": [r for r, _, _ in done] + ["never-served"], "y": 0})
        out = label_provenance(every, "fraud", limit=0.8)
        assert out.unknown == 1 and out.held_out + out.model_decided == 1000
        assert out.model_share == pytest.approx(0.9, abs=0.03) and out.alert_id is not None
        alerts = list_alerts()
        assert [a.rule for a in alerts] == ["feedback_loop:fraud"] and alerts[0].value == out.model_share
        held = pd.DataFrame({"_request_id": [r for r, arm, _ in done if arm == HOLDOUT]})
        clean = label_provenance(held, "fraud", limit=0.8)
        assert clean.model_share == 0.0 and clean.alert_id is None
        with pytest.raises(ValidationError, match="_request_id"):
            label_provenance(pd.DataFrame({"y": [1]}), "fraud")
        with pytest.raises(ValidationError, match="share"):
            label_provenance(held, "fraud", limit=0)
