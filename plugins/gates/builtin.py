"""The built-in promotion gates: metric thresholds, no regression, approvals and a custom command."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from forgeml.config import setting
from forgeml.contracts import GateResult
from forgeml.registry.evaluations import approvals, evaluations


def _metric(ctx_version: Any, metric: str, dataset: str | None, ws: Any) -> tuple[float | None, str]:
    """Return a version's metric: its newest evaluation (on dataset when given), else its registered metrics."""
    for ev in evaluations(ctx_version.name, ctx_version.version, dataset, workspace=ws):
        if metric in ev["metrics"]:
            return float(ev["metrics"][metric]), f"evaluation on {ev['dataset']}"
    if dataset is None and metric in ctx_version.metrics:
        return float(ctx_version.metrics[metric]), "registered metrics"
    return None, ""


@dataclass
class MetricThresholdSettings:
    """A metric must lie within bounds."""

    metric: str = setting(doc="Metric name, e.g. roc_auc.")
    min: float | None = setting(None, "Lowest accepted value.")
    max: float | None = setting(None, "Highest accepted value.")
    dataset: str | None = setting(None, "Only count evaluations on this dataset version (name@vN).")


class MetricThresholdGate:
    """Passes when the version's metric is within [min, max]."""

    name = "metric_threshold"

    def __init__(self, settings: MetricThresholdSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Compare the version's metric with the bounds."""
        s = self.settings
        value, source = _metric(context.model_version, s.metric, s.dataset, self.workspace)
        label = f"{self.name}({s.metric})"
        if value is None:
            return GateResult(label, False, f"{context.model_version.uri} has no metric {s.metric!r}; evaluate it "
                              "or register it with metrics=")
        details = {"metric": s.metric, "value": value, "min": s.min, "max": s.max, "source": source}
        if s.min is not None and value < s.min:
            return GateResult(label, False, f"{s.metric} = {value:.4g} is below the minimum {s.min}", details)
        if s.max is not None and value > s.max:
            return GateResult(label, False, f"{s.metric} = {value:.4g} is above the maximum {s.max}", details)
        return GateResult(label, True, f"{s.metric} = {value:.4g} ({source})", details)


@dataclass
class NoRegressionSettings:
    """The candidate must not be worse than production beyond a tolerance, on the same dataset version."""

    metric: str = setting(doc="Metric to compare, e.g. roc_auc.")
    tolerance: float = setting(0.0, "How much worse than production is still accepted (absolute).")
    higher_is_better: bool = setting(True, "False for losses and errors (rmse, log_loss).")
    dataset: str | None = setting(None, "Compare on this dataset version; default: the candidate's newest evaluation.")
    evaluate_missing: bool = setting(True, "Evaluate production on the same dataset when it has no result there.")


class NoRegressionGate:
    """Passes when the candidate's metric is at least production's minus the tolerance, on the same data."""

    name = "no_regression"

    def __init__(self, settings: NoRegressionSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Compare candidate and production evaluations on one dataset version."""
        s, ws, mv = self.settings, self.workspace, context.model_version
        label = f"{self.name}({s.metric})"
        prod = context.production
        if prod is None or prod.version == mv.version:
            return GateResult(label, True, "no production version to compare with")
        mine = [e for e in evaluations(mv.name, mv.version, s.dataset, workspace=ws) if s.metric in e["metrics"]]
        if not mine:
            return GateResult(label, False, f"{mv.uri} has no evaluation with {s.metric!r}"
                              + (f" on {s.dataset}" if s.dataset else "") + "; run `forgeml evaluate` first")
        ev = mine[0]
        theirs = [e for e in evaluations(prod.name, prod.version, ev["dataset"], workspace=ws)
                  if s.metric in e["metrics"] and e["target"] == ev["target"]]
        if not theirs and s.evaluate_missing:
            from forgeml.evaluation import evaluate

            evaluate(prod, ev["dataset"], target=ev["target"], task=ev["task"], workspace=ws)
            theirs = [e for e in evaluations(prod.name, prod.version, ev["dataset"], workspace=ws)
                      if s.metric in e["metrics"]]
        if not theirs:
            return GateResult(label, False, f"production {prod.uri} has no evaluation on {ev['dataset']}")
        cand, base = float(ev["metrics"][s.metric]), float(theirs[0]["metrics"][s.metric])
        delta = cand - base if s.higher_is_better else base - cand
        details = {"metric": s.metric, "candidate": cand, "production": base, "production_version": prod.version,
                   "dataset": ev["dataset"], "improvement": delta, "tolerance": s.tolerance}
        if delta < -s.tolerance:
            return GateResult(label, False, f"{s.metric} {cand:.4g} vs production {base:.4g} on {ev['dataset']}: "
                              f"worse by {-delta:.4g}, more than the tolerance {s.tolerance}", details)
        if delta < 0:  # a lower score passed: say it is within the tolerance, so nobody wonders why
            return GateResult(label, True, f"{s.metric} {cand:.4g} vs production {base:.4g} on {ev['dataset']}: "
                              f"worse by {-delta:.4g}, within the tolerance {s.tolerance}", details)
        return GateResult(label, True, f"{s.metric} {cand:.4g} vs production {base:.4g} on {ev['dataset']} "
                          f"(tolerance {s.tolerance})", details)


@dataclass
class ApprovalsSettings:
    """Named reviewers must approve the version."""

    reviewers: list[str] = setting([], "Who may approve, e.g. [\"alice\", \"bob\"].")
    min_approvals: int = setting(0, "How many of them must approve; 0 means all.")


class ApprovalsGate:
    """Passes when enough of the named reviewers approved this version."""

    name = "approvals"

    def __init__(self, settings: ApprovalsSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Count the named reviewers' approvals of the version."""
        s, mv = self.settings, context.model_version
        from forgeml.auth.principals import holds_role

        # only approvals by principals holding the approver role count (with no roles granted, all do)
        given = {a["reviewer"] for a in approvals(mv.name, mv.version, workspace=self.workspace)
                 if holds_role(a["reviewer"], "approver", workspace=self.workspace)}
        needed = s.min_approvals or len(s.reviewers)
        approved = sorted(given & set(s.reviewers))
        missing = [r for r in s.reviewers if r not in given]
        details = {"approved": approved, "missing": missing, "needed": needed}
        if len(approved) >= needed:
            return GateResult(self.name, True, f"approved by {', '.join(approved) or 'nobody needed'}", details)
        return GateResult(self.name, False, f"{len(approved)} of {needed} approvals; waiting for "
                          f"{', '.join(missing)} (`forgeml models approve {mv.name} {mv.version}`)", details)


@dataclass
class CommandSettings:
    """A command (an integration test) that must exit 0."""

    run: str = setting(doc="Shell command, run from the workspace root, e.g. \"pytest tests/integration\".")
    timeout_s: float = setting(600.0, "Fail the gate when the command runs longer than this.")


class CommandGate:
    """Runs a command with FORGEML_MODEL_URI set; passes on exit status 0."""

    name = "command"

    def __init__(self, settings: CommandSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Run the command and judge by its exit status."""
        s, mv = self.settings, context.model_version
        label = f"{self.name}({s.run})"
        env = {**os.environ, "FORGEML_HOME": str(self.workspace.root), "FORGEML_MODEL_URI": mv.uri,
               "FORGEML_MODEL_NAME": mv.name, "FORGEML_MODEL_VERSION": str(mv.version),
               "FORGEML_TARGET_STAGE": context.stage}
        try:
            proc = subprocess.run(s.run, shell=True, cwd=self.workspace.root, env=env, capture_output=True,
                                  text=True, timeout=s.timeout_s)
        except subprocess.TimeoutExpired:
            return GateResult(label, False, f"timed out after {s.timeout_s:g}s")
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        details = {"exit_code": proc.returncode, "output_tail": tail, "argv": shlex.split(s.run)[:1]}
        if proc.returncode != 0:
            return GateResult(label, False, f"exited with {proc.returncode}" + (f": {tail[-1]}" if tail else ""),
                              details)
        return GateResult(label, True, "exited with 0", details)
