"""`forgeml experiment`: the commands over a real workspace, their output and their one-line errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from click.testing import CliRunner
from test_experiments_outcomes import _serve

from forgeml.cli import cli
from forgeml.errors import ForgeError
from forgeml.serving.arms import HOLDOUT


def _run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_start_status_stop_list_and_import(workspace, tmp_path):
    started = _run("experiment", "start", "lift", "--endpoint", "fraud", "--arm", "control=", "--arm", "candidate=",
                   "--holdout", "0.1", "--outcome", "purchase", "--window", "0s", "--weights", "1,1")
    assert started.exit_code == 0, started.output
    assert "experiment lift started on fraud: arms control, candidate, holdout 10%" in started.output
    done = _serve(workspace, "lift", 600, None, {"control": 0.1, "candidate": 0.3, HOLDOUT: 0.1}, holdout=0.1,
                  spacing_s=0.001)
    time.sleep(max(0.0, done[-1][2] - time.time()) + 0.1)  # every prediction has matured
    late = tmp_path / "late.csv"
    pd.DataFrame({"request_id": [r for r, _, _ in done[:5]], "name": "refund", "value": 1.0}).to_csv(late, index=False)
    imported = _run("experiment", "outcomes", str(late))
    assert imported.exit_code == 0 and "5 outcomes recorded" in imported.output
    status = _run("experiment", "status", "lift")
    assert status.exit_code == 0, status.output
    assert "against control" in status.output and "Welch" not in status.output and "score test" in status.output
    as_json = json.loads(_run("experiment", "status", "lift", "--json").output)
    assert {c["treatment"]["arm"] for c in as_json["report"]["comparisons"]} == {"candidate", HOLDOUT}
    stopped = _run("experiment", "stop", "lift", "--no-promote")
    # the conversions came hours after each request, outside the 0 s window: no arm can win
    assert stopped.exit_code == 0 and "experiment lift stopped: keep control" in stopped.output
    listed = _run("experiment", "list", "--json")
    assert json.loads(listed.output)[0]["decision"] == "keep"
    training = tmp_path / "train.parquet"
    pd.DataFrame({"_request_id": [r for r, _, _ in done]}).to_parquet(training)
    check = _run("experiment", "feedback-check", str(training), "--endpoint", "fraud", "--limit", "0.5")
    assert check.exit_code == 1 and json.loads(check.output)["alert_id"] is not None


def test_sizes_and_bad_input_are_one_line(workspace):
    size = _run("experiment", "size", "--baseline", "0.1", "--mde", "0.01")
    assert json.loads(size.output)["control_units"] == 14745
    for args, message in [
        (("experiment", "start", "x", "--endpoint", "fraud", "--arm", "nothing"), "NAME=MODEL_URI"),
        (("experiment", "start", "x", "--endpoint", "fraud", "--arm", "c=", "--weights", "a,b"), "--weights"),
        (("experiment", "status", "nope"), "no experiment 'nope'"),
        (("experiment", "size", "--metric", "mean", "--baseline", "1", "--mde", "0.1"), "standard deviation"),
        (("experiment", "replay", "fraud@1", "--endpoint", "fraud"), "no requests"),
    ]:
        result = _run(*args)  # the CLI's main prints a ForgeError in one line; here it arrives as the exception
        assert result.exit_code != 0 and isinstance(result.exception, ForgeError), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception)


def test_offpolicy_estimates_another_split_from_logged_propensities(workspace):
    """`experiment offpolicy` reads the logged arms and propensities: the logging split itself is estimated
    exactly by IPS; all traffic to the candidate gives the candidate's mean (SNIPS, DR) and IPS near it."""
    import forgeml

    started = _run("experiment", "start", "opl", "--endpoint", "fraud", "--arm", "control=", "--arm", "candidate=",
                   "--outcome", "purchase", "--window", "1s")
    assert started.exit_code == 0, started.output
    assert "no matured request" in str(_run("experiment", "offpolicy", "opl", "--target", "candidate").exception)
    done = _serve(workspace, "opl", 2000, None, {"control": 0.0, "candidate": 0.0}, spacing_s=0.001)
    rng = np.random.default_rng(7)
    rate = {"control": 0.1, "candidate": 0.3}
    converted = [(rid, arm, ts) for rid, arm, ts in done if rng.random() < rate[arm]]
    forgeml.log_outcomes([{"request_id": rid, "name": "purchase", "value": 1.0, "time": ts + 0.5}
                          for rid, _, ts in converted])  # inside the 1 s label window
    time.sleep(max(0.0, done[-1][2] + 1 - time.time()) + 0.2)  # every prediction has matured
    out = json.loads(_run("experiment", "offpolicy", "opl", "--target", "candidate", "--json").output)
    by = {e["estimator"]: e for e in out["estimates"]}
    cand = [rid for rid, arm, _ in done if arm == "candidate"]
    observed = sum(1 for _, arm, _ in converted if arm == "candidate") / len(cand)
    assert out["requests"] == 2000 and out["per_arm"]["candidate"]["requests"] == len(cand)
    assert by["snips"]["value"] == by["doubly_robust"]["value"] == observed
    assert abs(by["ips"]["value"] - 0.3) < 4 * by["ips"]["std_error"] and by["ips"]["effective_n"] < 1200
    same = json.loads(_run("experiment", "offpolicy", "opl", "--target", "control=0.5,candidate=0.5", "--json").output)
    assert {e["estimator"]: e["value"] for e in same["estimates"]}["ips"] == same["logged_value"]
    table = _run("experiment", "offpolicy", "opl", "--target", "candidate")
    assert table.exit_code == 0 and "doubly_robust" in table.output and "effective_n" in table.output
    for target, message in [("nobody", "not one of the logged arms"), ("control=0.5", "add up to 0.5"),
                            ("control=x", "ARM=SHARE")]:
        result = _run("experiment", "offpolicy", "opl", "--target", target)
        assert isinstance(result.exception, ForgeError) and message in str(result.exception), result.output
