"""`forgeml quickstart recsys` end to end: shop, both models, offline metrics, the served recommender."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_recsys_quickstart_builds_evaluates_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The small recsys quickstart beats popularity offline and answers three users over HTTP."""
    from click.testing import CliRunner

    from forgeml.cli import cli

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["quickstart", "recsys", "shop-demo", "--small", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert [s["title"] for s in summary["steps"]][-1] == "Serve the recommender and ask it"
    pipeline, popularity = summary["metrics"]["pipeline"], summary["metrics"]["popularity"]
    assert pipeline["ndcg@10"] > popularity["ndcg@10"] and pipeline["coverage@10"] > popularity["coverage@10"]
    assert [a["user"] for a in summary["served"]] == [1, 2, 3]
    for answer in summary["served"]:
        assert len(answer["items"]) == 10 and answer["fallback"] is None and answer["model_version"] == 1
    assert (tmp_path / "shop-demo" / "plugins.toml").read_text().count("[serving.recommenders.shop]") == 1
    again = CliRunner().invoke(cli, ["quickstart", "recsys", "shop-demo", "--small"])
    assert again.exit_code != 0 and "--force" in str(again.exception)


def test_only_recsys_takes_a_second_argument() -> None:
    """`forgeml quickstart DIR extra` is a usage error naming the extra argument."""
    from click.testing import CliRunner

    from forgeml.cli import cli

    res = CliRunner().invoke(cli, ["quickstart", "somewhere", "extra"])
    assert res.exit_code == 2 and "unexpected argument 'extra'" in res.output
