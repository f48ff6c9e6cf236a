"""The quickstart's folder: refuse to overwrite, create the workspace, configure gates, alerts and pipelines."""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError, ValidationError
from forgeml.quickstart.scripts import PIPELINE_FILE

MARKER = Path(".forgeml") / "quickstart.json"
MONITORED = ["amount", "amount_vs_mean", "category", "mean_amount_30d", "txn_count_30d"]
RULE = "fraud-feature-drift"


def prepare_directory(directory: str | Path, force: bool = False) -> Path:
    """Return the folder to build in: new or empty; with force, a previous quickstart is replaced."""
    root = Path(directory).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ValidationError(f"{root} is a file; give the quickstart a new folder")
    if root.is_dir() and any(root.iterdir()):
        if not force:
            what = "a previous quickstart" if (root / MARKER).exists() else "files"
            raise ValidationError(f"{root} already holds {what}; choose a new folder, empty this one, or pass "
                                  f"--force to replace a previous quickstart")
        if not (root / MARKER).exists():
            raise ValidationError(f"{root} holds files that are not a quickstart; --force only replaces a previous "
                                  f"quickstart and never deletes other files, so choose a new or empty folder")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    # generated data, models and logs are never meant for a commit: git, from any repository above, skips them
    (root / ".gitignore").write_text("# made by forgeml quickstart: nothing here belongs in version control\n*\n")
    return root


def quickstart_config(retrain_params: dict[str, Any] | None = None, min_auc: float = 0.75,
                      drift_share: float = 0.4) -> str:
    """Return the plugins.toml tables the quickstart adds: promotion gates and the drift alert rule."""
    columns = ", ".join(f'"{c}"' for c in MONITORED)
    return f"""
# The quickstart's fraud model: gates every promotion to production must pass.
[registry.models.fraud]
description = "Card fraud probability from 30-day spending stats and the transaction's amount."
gates = [
    {{ gate = "metric_threshold", metric = "roc_auc", min = {min_auc} }},
    {{ gate = "no_regression", metric = "roc_auc", tolerance = 0.02 }},
]

# Card events: a folder of Parquet files tailed by `forgeml features stream card_activity`.
[streams.card_events]
plugin = "files"
path = "data/card_events"

# A few hundred requests make PSI alone noisy: a column drifts only when the difference is also significant.
[monitoring.tests.psi]
decide = "both"

# Drift in the served features starts the retraining pipeline (retrain_pipeline.py).
[[monitoring.rules]]
name = "{RULE}"
metric = "drift_share"
op = ">="
threshold = {drift_share}
model = "fraud"
window = "1h"
columns = [{columns}]
severity = "warning"
pipeline = "retrain_fraud"
"""


def configure(root: Path, min_auc: float = 0.75, drift_share: float = 0.4) -> None:
    """Point [pipelines] modules at the retraining pipeline and append the gates and the alert rule."""
    path = root / "plugins.toml"
    text = path.read_text()
    header = "\n[pipelines]\n"
    at = text.find(header)
    line = "\nmodules = []\n"
    spot = text.find(line, at) if at >= 0 else -1
    following = text.find("\n[", at + len(header)) if at >= 0 else -1
    if spot < 0 or (0 <= following < spot):
        raise ConfigError(f"{path}: expected `modules = []` under [pipelines] in the default configuration")
    text = text[:spot] + f'\nmodules = ["{PIPELINE_FILE}"]\n' + text[spot + len(line):]
    text += quickstart_config(min_auc=min_auc, drift_share=drift_share)
    parsed = tomllib.loads(text)
    if parsed["pipelines"]["modules"] != [PIPELINE_FILE] or "fraud" not in parsed["registry"]["models"]:
        raise ConfigError(f"{path}: the quickstart's settings did not land where expected")
    path.write_text(text)


@contextmanager
def inside(root: Path) -> Iterator[Any]:
    """Open the workspace and make it this process's: current workspace, FORGEML_HOME and working folder."""
    from forgeml.workspace import Workspace, set_current

    old_home, old_cwd = os.environ.get("FORGEML_HOME"), os.getcwd()
    ws = Workspace(root)
    ws.config.validate()
    os.environ["FORGEML_HOME"] = str(root)
    os.chdir(root)
    set_current(ws)
    try:
        yield ws
    finally:
        set_current(None)
        os.chdir(old_cwd)
        if old_home is None:
            os.environ.pop("FORGEML_HOME", None)
        else:
            os.environ["FORGEML_HOME"] = old_home
        ws.close()
