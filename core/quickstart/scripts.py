"""Files the quickstart writes into its workspace: the training script, the retraining pipeline, configs.

They are the user's code from then on: `forgeml tune`, `forgeml submit` and `forgeml pipeline run`
use them exactly as the quickstart did.
"""

from __future__ import annotations

from pathlib import Path

TRAIN_SCRIPT = '''\
"""Train the fraud model: a small torch MLP on a registered dataset version.

`forgeml quickstart` ran this file as tuning trials and as the final training run, each one a
scheduler job. Run it again yourself, for example:

    forgeml tune run train.py --space space.toml --trials 8 -- --dataset fraud_training@v1
    forgeml submit train.py -- --dataset fraud_training@v1 --epochs 10
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import forgeml
from forgeml.datasets import split
from forgeml.quickstart.features import MODEL_INPUTS, TARGET
from forgeml.quickstart.model import FraudNet
from forgeml.tracking import log_input

DEFAULTS = {"lr": 0.005, "hidden": 32, "weight_decay": 1e-5, "batch_size": 256}


def tensors(table, device):
    """Inputs and labels of an Arrow table as float tensors."""
    x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype("float32") for c in MODEL_INPUTS])
    y = table[TARGET].to_numpy(zero_copy_only=False).astype("float32")
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def roc_auc(y, score):
    """Area under the ROC curve by the rank-sum formula (0.5 when one class is missing)."""
    y, score = y.cpu().numpy(), score.cpu().numpy()
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return 0.5
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def main():
    """Train, report each epoch to the tuner, and log the model as the run's `model` artifact."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset version to train on, e.g. fraud_training@v1")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    params = {**DEFAULTS, **forgeml.trial_params()}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)  # each job holds one core; the scheduler runs several side by side
    torch.manual_seed(0)

    # the same deterministic split the quickstart used to hold out its test rows
    parts = split(args.dataset, {"train": 0.7, "validation": 0.15, "test": 0.15}, by="time",
                  column="event_timestamp")
    x_train, y_train = tensors(parts["train"], device)
    x_val, y_val = tensors(parts["validation"], device)
    model = FraudNet.for_data(x_train.cpu(), int(params["hidden"])).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]),
                                  weight_decay=float(params["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    batch = int(params["batch_size"])

    with forgeml.start_run():
        forgeml.log_params({**params, "epochs": args.epochs, "device": device})
        log_input(dataset=args.dataset)
        for epoch in range(args.epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(x_train), device=device)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                optimizer.zero_grad()
                loss = loss_fn(model.logits(x_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val_logits = model.logits(x_val)
                val_loss = float(loss_fn(val_logits, y_val))
            forgeml.log_metrics({"val_loss": val_loss, "roc_auc": roc_auc(y_val, val_logits),
                                 "train_loss": loss.item()}, step=epoch)
            forgeml.log_throughput(len(x_train), time.perf_counter() - started, step=epoch)
            forgeml.report(val_loss, epoch)  # the tuner's pruner sees every epoch
            if forgeml.should_prune():
                raise forgeml.TrialPruned()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            torch.save(model.cpu(), folder / "model.pt")  # the torch flavor of the registry loads this
            forgeml.log_artifact(folder, "model")


if __name__ == "__main__":
    main()
'''

PIPELINE_MODULE = '''\
"""The fraud model's retraining pipeline: a fresh training set from recent data, train, register, evaluate.

The drift alert rule in plugins.toml names it, so a drift alert starts it; run it by hand with

    forgeml pipeline run retrain_fraud
"""

from forgeml import pipeline, step
from forgeml.quickstart import training


@step(cache=False)
def build_training_set(days: int) -> dict:
    """Point-in-time training set of the last `days` days whose labels have arrived, registered and validated."""
    return training.recent_training_set(days)


@step(cache=False)
def train(data: dict, epochs: int) -> dict:
    """Train train.py on the new dataset version as a scheduler job, with production's hyperparameters."""
    return training.train_job(data["dataset"], epochs, training.production_params())


@step(cache=False)
def register(trained: dict, data: dict) -> int:
    """Register the trained model as the next STAGING version of `fraud`."""
    return training.register_trained(trained, data)


@step(cache=False)
def evaluate(version: int, data: dict) -> dict:
    """Evaluate the new version on the held-out recent rows, by category."""
    return training.evaluate_version(version, data["holdout"])


@pipeline(name="retrain_fraud")
def retrain_fraud(days: int = __DAYS__, epochs: int = __EPOCHS__):
    """Retrain `fraud` on the last `days` days; the new version waits in staging for its promotion gates."""
    data = build_training_set(days)
    trained = train(data, epochs)
    version = register(trained, data)
    evaluate(version, data)
'''

SPACE_TOML = """\
# The search space `forgeml quickstart` tuned train.py over (forgeml tune run --space space.toml).
[lr]
type = "float"
low = 0.001
high = 0.03
log = true

[hidden]
type = "categorical"
choices = [16, 32, 64]

[weight_decay]
type = "float"
low = 1e-6
high = 1e-3
log = true
"""

EXPECTATIONS_TOML = """\
# What a fraud training set must look like (forgeml datasets validate NAME@vN expectations.toml).
name = "fraud_training"

[[expectations]]
expect = "schema"
columns = { transaction_id = "string", user_id = "integer", amount = "float", category = "string", \
is_fraud = "integer", txn_count_30d = "integer", mean_amount_30d = "float", amount_vs_mean = "float", \
risky_category = "float", card_txns_10m = "integer" }

[[expectations]]
expect = "not_null"
column = ["user_id", "amount", "category", "is_fraud", "txn_count_30d", "mean_amount_30d", "amount_vs_mean"]

[[expectations]]
expect = "range"
column = ["amount", "mean_amount_30d"]
min = 0

[[expectations]]
expect = "range"
column = "txn_count_30d"
min = 1

[[expectations]]
expect = "allowed_values"
column = "is_fraud"
values = [0, 1]

[[expectations]]
expect = "allowed_values"
column = "category"
values = ["grocery", "fuel", "travel", "online", "restaurant", "electronics"]

[[expectations]]
expect = "unique"
column = "transaction_id"

[[expectations]]
expect = "row_count"
min = 200
"""

PIPELINE_FILE = "retrain_pipeline.py"


def write_workspace_files(root: Path, retrain_days: int = 30, epochs: int = 6) -> list[Path]:
    """Write the training script, the pipeline module and the config files into the workspace."""
    pipeline = PIPELINE_MODULE.replace("__DAYS__", str(int(retrain_days))).replace("__EPOCHS__", str(int(epochs)))
    files = {"train.py": TRAIN_SCRIPT, PIPELINE_FILE: pipeline, "space.toml": SPACE_TOML,
             "expectations.toml": EXPECTATIONS_TOML}
    written = []
    for name, text in files.items():
        path = root / name
        path.write_text(text)
        written.append(path)
    return written
