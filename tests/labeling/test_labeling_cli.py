"""`forgeml label`: late outcomes from a file, counts, weak labels, a training set, lineage, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from click.testing import CliRunner

from forgeml.cli import cli


def run(*args: str) -> Any:
    """Invoke the CLI in-process and return the click result."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_outcomes_weak_labels_and_a_training_set(workspace: Any, pool: Any, tmp_path: Any) -> None:
    """Chargebacks arrive as outcomes from a CSV; functions label the rest; the training set holds both."""
    _, y, _ = pool
    csv = tmp_path / "chargebacks.csv"
    csv.write_text("txn,outcome,at\n" + "".join(f"{i},{['neg', 'pos'][y[i]]},{1700000000 + i}\n" for i in range(30)))
    added = run("label", "add", "pool-labels", str(csv), "--source-kind", "outcome", "--source-name", "chargebacks",
                "--key", "txn", "--label", "outcome", "--at", "at")
    assert added.exit_code == 0 and "30 labels recorded" in added.output
    lfs = tmp_path / "lfs.py"
    lfs.write_text("from forgeml.labeling.weak import labeling_function\n"
                   "@labeling_function()\ndef sign_a(row):\n    return 'pos' if row['a'] > 0 else 'neg'\n"
                   "@labeling_function()\ndef sign_b(row):\n    return 'pos' if row['b'] > 0.5 else None\n")
    weak = run("label", "weak", "pool-labels", str(lfs), "--json")
    assert weak.exit_code == 0, weak.output
    assert {f["function"] for f in json.loads(weak.output)["functions"]} == {"sign_a", "sign_b"}
    shown = json.loads(run("label", "show", "pool-labels").output)
    assert shown["by_kind"]["outcome"] == 30 and shown["by_kind"]["label_model"] == 400
    train = run("label", "train", "pool-labels", "--min-confidence", "0.5")
    assert train.exit_code == 0 and "pool-labels.train@v1: 400 labelled rows" in train.output
    lineage = json.loads(run("label", "lineage", "pool-labels").output)
    assert lineage["training_sets"][0]["labels"] == "pool-labels.labels@v1"
    listed = run("label", "ls", "--format", "json")
    assert json.loads(listed.output)[0]["items"] == 400


def test_errors_are_one_line(workspace: Any, pool: Any) -> None:
    """An unknown label set and a bad label file exit 2 with one line naming the problem."""
    proc = subprocess.run([sys.executable, "-m", "forgeml", "label", "pull", "pool-label"], capture_output=True,
                          text=True, cwd=workspace.root, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean 'pool-labels'" in proc.stderr
