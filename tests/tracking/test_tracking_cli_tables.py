"""`runs ls` and `runs search` read well at 80 and 160 columns; every table prints as JSON or CSV too."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import forgeml
from forgeml.cli import cli
from forgeml.errors import NotFoundError
from forgeml.tracking import search_runs, start_run


@pytest.fixture
def many_runs(tracked):
    """Five runs with six params (four vary) and four metrics (three vary)."""
    ids = []
    for i in range(5):
        with start_run(name=f"trial-{i}", experiment="mnist-classifier") as run:
            forgeml.log_params({"learning_rate": 10 ** -(i + 1), "batch_size": 32 * (i % 2 + 1), "optimizer": "adam",
                                "hidden_units": 64, "dropout_probability": 0.1 * i, "weight_decay": 1e-4 * (i + 1)})
            forgeml.log_metrics({"val_loss": 1 / (i + 1), "train_loss": 0.5 / (i + 1), "val_accuracy": 0.9 + i / 100,
                                 "roc_auc": 0.8})
        ids.append(run.id)
    return ids


def run_cli(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def header_cells(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


class TestRunTables:
    def test_80_columns_fit_with_whole_headers_and_only_varying_values(self, many_runs):
        out = run_cli("runs", "ls")
        assert max(len(line) for line in out.splitlines()) <= 80
        headers = header_cells(out)
        assert headers[:4] == ["id", "name", "status", "started"]
        assert "optimizer" not in headers and "hidden_units" not in headers and "roc_auc" not in headers
        assert not any("…" in h for h in headers)
        assert "more varying column(s)" in out and "--columns" in out

    def test_160_columns_show_more(self, many_runs):
        narrow, wide = header_cells(run_cli("runs", "ls")), header_cells(run_cli("runs", "ls", width=160))
        assert len(wide) > len(narrow)
        assert {"learning_rate", "val_loss", "batch_size"} <= set(wide)
        assert max(len(line) for line in run_cli("runs", "ls", width=160).splitlines()) <= 160

    def test_search_shows_the_keys_it_filters_and_sorts_on_first(self, many_runs):
        out = run_cli("runs", "search", "params.weight_decay > 0.0002 order by metrics.val_accuracy desc")
        assert header_cells(out)[4:6] == ["weight_decay", "val_accuracy"]
        assert "trial-4" in out.splitlines()[4]

    def test_columns_option_picks_bare_or_full_names(self, many_runs):
        headers = header_cells(run_cli("runs", "ls", "--columns", "name,learning_rate,metrics.roc_auc,optimizer"))
        assert headers == ["name", "learning_rate", "roc_auc", "optimizer"]
        with pytest.raises(NotFoundError, match=r"--columns: 'learnin_rate' is not a column \(did you mean "
                                                r"'params.learning_rate'\?\)"):
            CliRunner().invoke(cli, ["runs", "ls", "--columns", "learnin_rate"], catch_exceptions=False)

    def test_csv_and_json_carry_every_column_or_the_chosen_ones(self, many_runs):
        rows = list(csv.DictReader(io.StringIO(run_cli("runs", "ls", "--format", "csv"))))
        assert len(rows) == 5 and {"run_id", "params.optimizer", "metrics.roc_auc"} <= set(rows[0])
        chosen = list(csv.DictReader(io.StringIO(run_cli("runs", "search", "metrics.val_loss < 0.3",
                                                         "--columns", "id,val_loss", "--format", "csv"))))
        assert [set(r) for r in chosen] == [{"id", "metrics.val_loss"}] * 2
        assert {r["id"] for r in chosen} == set(many_runs[3:])
        records = json.loads(run_cli("runs", "ls", "--format", "json"))
        assert {r["run_id"] for r in records} == set(many_runs)

    def test_format_reaches_every_command_that_prints_json(self, many_runs):
        jobs = list(csv.reader(io.StringIO(run_cli("jobs", "ls", "--format", "csv"))))
        assert jobs[0][:3] == ["id", "name", "state"]
        assert json.loads(run_cli("runs", "artifacts", many_runs[0], "--format", "json")) == []
        shown = json.loads(run_cli("runs", "show", many_runs[0], "--format", "json"))
        assert shown["params"]["optimizer"] == "adam"


class TestUnknownKeys:
    def test_a_key_no_run_has_is_named_with_a_did_you_mean(self, many_runs):
        with pytest.raises(NotFoundError, match=r"no run has the metric 'val_los' \(did you mean 'val_loss'\?\); "
                                                r"known metrics: roc_auc, train_loss, val_accuracy, val_loss"):
            search_runs("metrics.val_los < 1")
        with pytest.raises(NotFoundError, match="no run has the tag 'team'; no run has any tag"):
            search_runs("tags.team = 'vision'")
        with pytest.raises(NotFoundError, match="no run has the param 'learning_rat'"):
            CliRunner().invoke(cli, ["runs", "search", "params.learning_rat < 1"], catch_exceptions=False)

    def test_sorting_on_an_unknown_key_is_refused_even_when_runs_match(self, many_runs):
        with pytest.raises(NotFoundError, match="no run has the metric 'accuracy' \\(did you mean 'val_accuracy'"):
            search_runs("params.optimizer = 'adam' order by metrics.accuracy")

    def test_known_keys_with_no_match_and_is_null_on_a_missing_key_still_answer(self, many_runs):
        assert search_runs("metrics.val_loss < 0.01").empty
        assert len(search_runs("tags.team is null")) == 5
