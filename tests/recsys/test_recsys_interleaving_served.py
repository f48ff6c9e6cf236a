"""An interleaving experiment between two recommenders, end to end over HTTP on a real server.

The endpoint merges both rankers' lists, logs which arm showed each item, takes clicks through
POST /v1/outcomes, and `forgeml experiment status` names the ranker users prefer.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from click.testing import CliRunner
from serving_support import RunningServer

from forgeml.cli import cli


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def _recommend(srv: RunningServer, user: int) -> Any:
    res = srv.client.post("/v1/recommenders/shop/recommend", json={"user": user, "n": 8, "context": {"hour": 20}})
    assert res.status_code == 200, res.text
    return res.json()


def test_an_interleaving_experiment_is_served_credited_and_analyzed(server: RunningServer) -> None:
    """Every list merges both rankers with balanced teams; clicks on the candidate's items make it the winner."""
    from forgeml.serving import read_prediction_log

    started = _cli("experiment", "start", "ilv", "--endpoint", "shop", "--policy", "interleave",
                   "--arm", "control=shop", "--arm", "candidate=tt", "--outcome", "click", "--window", "4s")
    assert started.exit_code == 0, started.output
    rng = random.Random(5)
    shown: dict[str, list[str]] = {}
    for i in range(60):
        body = _recommend(server, i % 120)
        teams = [item["team"] for item in body["items"]]
        assert body["experiment"] == "ilv" and body["interleaved"] == {"control": "shop", "candidate": "tt"}
        assert len(teams) == 8 and abs(teams.count("control") - teams.count("candidate")) <= 1
        assert {item["ranker"] for item in body["items"]} == {"shop", "tt"}
        assert len({item["item"] for item in body["items"]}) == 8
        shown[body["request_id"]] = teams
        # simulated users like the candidate's picks: they click them five times as often
        clicks = [pos for pos, team in enumerate(teams, 1) if rng.random() < (0.5 if team == "candidate" else 0.1)]
        if clicks:
            res = server.client.post("/v1/outcomes", json={"outcomes": [
                {"request_id": body["request_id"], "name": "click", "value": pos} for pos in clicks]})
            assert res.status_code == 200 and res.json() == {"recorded": len(clicks)}, res.text
    server.state.predlog.flush()
    log = read_prediction_log("recommender.shop").to_pandas()
    mine = log[log["_experiment"] == "ilv"].sort_values(["_request_id", "position"])
    assert {rid: list(g["team"]) for rid, g in mine.groupby("_request_id")} == shown  # the arm of every shown item
    time.sleep(4.5)  # every request has matured (its 4 s click window has passed)
    status = _cli("experiment", "status", "ilv", "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)["report"]
    cmp = report["comparisons"][0]
    assert cmp["treatment"]["arm"] == "candidate" and cmp["test"].startswith("team-draft interleaving")
    assert cmp["difference"] > 0.3 and cmp["p_value"] < 0.01 and cmp["sequential_p"] < 0.05
    assert report["arms"]["candidate"]["wins"] > 3 * report["arms"]["control"]["wins"]
    assert report["arms"]["control"]["requests"] == 60
    table = _cli("experiment", "status", "ilv")
    assert "team-draft interleaving" in table.output and "candidate" in table.output
    stopped = json.loads(_cli("experiment", "stop", "ilv", "--json").output)
    assert stopped["decision"]["action"] == "promote" and stopped["decision"]["winner"] == "candidate"
    assert "recommender tt is preferred" in stopped["decision"]["note"]
    deadline = time.monotonic() + 10  # the server reads the stopped experiment's file on the next request
    while "experiment" in (body := _recommend(server, 3)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "experiment" not in body and all("team" not in item for item in body["items"])


def test_an_interleaving_experiment_needs_two_served_recommenders(shop_ws: Any) -> None:
    """Unknown recommenders, a third arm, a holdout, or an endpoint other than the control are one-line errors."""
    from forgeml.errors import ForgeError

    for args, message in [
        (("--arm", "control=shop", "--arm", "candidate=nope"), "no recommender 'nope'"),
        (("--arm", "control=shop", "--arm", "x=tt", "--arm", "y=shop"), "two recommenders"),
        (("--arm", "control=tt", "--arm", "candidate=shop"), "the control's recommender"),
        (("--arm", "control=shop", "--arm", "candidate=tt", "--holdout", "0.1"), "no holdout"),
    ]:
        result = _cli("experiment", "start", "bad", "--endpoint", "shop", "--policy", "interleave", *args)
        assert isinstance(result.exception, ForgeError) and message in str(result.exception), result.output
